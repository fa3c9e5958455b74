"""Generation through ONE worker thread.

Every front end (terminal chat, web demo, OpenAI server) talks to a `GenerationWorker`:
`model.generate` is neither thread-safe on a shared model nor cheap to interleave, so jobs run
one at a time, in arrival order, on the worker's thread. A job streams its text back to a
plain queue (sync consumers) or to an asyncio queue (the server), and ends with the engine's
`GenerationResult`.
"""

from __future__ import annotations

import asyncio
import queue
import threading

from .engine import ChatEngine, GenerationResult, Prompt, SamplingParams


class Job:
    """One queued generation. Iterate it (sync) or `async for` over `job.events()` (asyncio).

    Events: ("text", str) ... then ("done", GenerationResult) or ("error", Exception).
    """

    def __init__(self, prompt: Prompt, params: SamplingParams, loop: asyncio.AbstractEventLoop | None = None):
        self.prompt, self.params = prompt, params
        self.cancel = threading.Event()
        self._loop = loop
        self._queue: asyncio.Queue | queue.Queue = asyncio.Queue() if loop else queue.Queue()

    def _emit(self, kind: str, value) -> None:  # called on the worker thread
        if self._loop is None:
            self._queue.put((kind, value))
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            self.cancel.set()

    def __iter__(self):
        while True:
            kind, value = self._queue.get()
            yield kind, value
            if kind != "text":
                return

    async def events(self):
        while True:
            kind, value = await self._queue.get()
            yield kind, value
            if kind != "text":
                return


class GenerationWorker:
    """A single thread that owns the model and runs queued jobs first-come, first-served."""

    def __init__(self, engine: ChatEngine):
        self.engine = engine
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="minimind-generation", daemon=True)
        self._thread.start()

    def submit(self, prompt: Prompt | list[int], params: SamplingParams, loop=None) -> Job:
        job = Job(prompt if isinstance(prompt, Prompt) else Prompt(list(prompt)), params, loop)
        self._jobs.put(job)
        return job

    @property
    def pending(self) -> int:
        return self._jobs.qsize()

    def close(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.cancel.is_set():  # the client left while queued
                job._emit("done", GenerationResult(len(job.prompt), 0, "stop"))
                continue
            try:
                on_text = lambda text, j=job: j._emit("text", text)  # noqa: E731
                result = self.engine.generate(job.prompt, job.params, on_text, job.cancel)
            except Exception as exc:  # noqa: BLE001 - reported to the job's consumer, the worker lives on
                job._emit("error", exc)
            else:
                job._emit("done", result)
