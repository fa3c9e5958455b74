"""GRPO step time, rollout tokens/s and peak memory: the ``grpo`` stage vs MiniMind's ``train_grpo.py`` loop.

Both sides train the same fresh MiniMind (a ``preset_config`` saved with the shipped tokenizer)
on the embedded RL prompts (``embedded:rl_train``: single-digit sums, half of them rendered with
thinking on) at the same design point: ``--prompts`` B prompts per optimizer step, ``--generations``
G sampled completions each (temperature ``--temperature``, no top-k / top-p), at most
``--completion-length`` L new tokens, the exact-answer reward, CISPO with ``epsilon_high`` 5 plus
a k3 KL of ``beta`` 0.1 to a frozen copy of the start model, AdamW (lr 3e-4, 5 warm-up steps,
gradient clipping at 1.0), one update per rollout batch, ``--steps`` N optimizer steps.

* **ours**: ``minimind_hf.cli.train.main(["recipes/grpo.yaml", --key value ...])`` - the code
  path of ``accelerate launch scripts/train.py recipes/grpo.yaml`` (TRL's GRPOTrainer) - with
  ``--num_generations G --max_completion_length L --per_device_train_batch_size B*G`` (TRL
  counts completions), ``--max_steps N --eval_files [] --reward_funcs [exact_answer]
  --loss_type cispo --beta 0.1 --logging_steps 1 --report_to none``.
* **reference**: MiniMind's ``train_grpo.py`` design, written out here: per step one batched
  ``model.generate(do_sample=True, num_return_sequences=G, max_new_tokens=L)`` with the KV
  cache on the B left-padded prompts, the completion mask up to the first eos, rewards per
  completion, group-normalised advantages (r - group mean) / (group std + 1e-4), per-token
  log-probs of the policy (with grad) and of the frozen reference (no grad) on prompt +
  completion, the token-level CISPO loss ``-clamp(ratio, max=5).detach() * A * logp`` (ratio =
  exp(logp - logp.detach()): one update per batch) plus ``beta * (exp(ref - logp) - (ref - logp) - 1)``
  averaged over the completion tokens, backward, clipping, AdamW. (MiniMind's own loop leaves
  out the attention mask in the log-prob forwards; this one passes it, as TRL does, so the two
  sides compute the same thing.)

Each run is a fresh child process (``--child``), so its peak RSS is its own: ``peak_rss_mib`` is
the ``/proc/self/status`` VmHWM high-water mark during the training steps (reset when training
begins: models, reference copy and data are loaded by then), ``lifetime_peak_rss_mib`` the
process's whole-life peak. Step time = the time between consecutive step ends, the first
(warm-up) step excluded; rollout tokens/s = completion tokens generated (up to and including the
first eos; ours: TRL's per-step ``completions/mean_length`` x B*G from trainer_state.json) / that
time. Sides alternate (ours, reference, reference, ours, ...) for ``--repeats`` rounds; ratios
ours/reference are medians of the per-round ratios on the chosen clock (process CPU time with
one thread, ``--clock``). Each step is also split into phases (generate; score = reference
log-probs, rewards, advantages; loss = policy forward + loss; update = backward, optimizer,
the rest of the loop) - ours by timing GRPOTrainer's own methods - to say where a gap is.
No target: the figures are context. ``--sides ... ours_compact`` adds a what-if side (ours with TRL's
fused log-prob head scoring only the completion positions, as it does where Triton runs) and
``--profile`` one extra cProfile'd run per side (see docs/PERFORMANCE.md for what they showed).

    python -m benchmarks.bench_grpo [--quick] [--prompts 4] [--generations 4] [--completion-length 32]
                                    [--steps 6] [--repeats 2] [--preset tiny]
                                    [--sides ours reference ours_compact] [--profile]
"""

from __future__ import annotations

import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.bench_memory import _reset_peak_rss, _status_kib  # noqa: E402

RECIPE = common.REPO_ROOT / "recipes" / "grpo.yaml"
PROMPTS = "embedded:rl_train"
SIDES = ("ours", "reference")
# A what-if side: ours with TRL's fused log-prob head scoring only the completion positions on CPU too
# (TRL 1.16 does so only where Triton runs: on CPU it projects every prompt + completion position).
WHAT_IF = ("ours_compact",)
PHASES = ("generate", "score", "loss", "update")
# Fixed by the design point (MiniMind's train_grpo.py defaults that recipes/grpo.yaml keeps).
EPSILON_HIGH = 5.0
LEARNING_RATE = 3e-4
WARMUP_STEPS = 5
MAX_GRAD_NORM = 1.0
THINKING_RATIO = 0.5
MIB = 2**20


def parse_args(argv=None):
    parser = common.base_parser("grpo", __doc__)
    parser.add_argument("--prompts", type=int, default=None, help="B: prompts per optimizer step (default 4; quick 2)")
    parser.add_argument("--generations", type=int, default=None, help="G: completions per prompt (default 4; quick 2)")
    parser.add_argument(
        "--completion-length", type=int, default=None, help="L: max new tokens per completion (default 32; quick 8)"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="N: optimizer steps per run, the first untimed (default 6; quick 2)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="runs per side, alternating (default 2; quick 1)")
    parser.add_argument("--preset", default="tiny", help="MiniMind preset of the fresh model (default tiny)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (recipes/grpo.yaml: 1.0)")
    parser.add_argument("--beta", type=float, default=0.1, help="k3 KL coefficient (default 0.1)")
    parser.add_argument(
        "--sides",
        nargs="+",
        default=list(SIDES),
        choices=SIDES + WHAT_IF,
        help="default: ours reference; ours_compact = ours with TRL's log-prob head scoring only the completion "
        "positions (what-if: how much of the gap is the prompt positions TRL scores on CPU)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="after the timed runs, one more run per side under cProfile (timed steps only): the functions "
        "with the most cumulative and self time per step go into the JSON",
    )
    parser.add_argument("--child", default=None, help=_hidden())
    args = parser.parse_args(argv)
    args.prompts = args.prompts or (2 if args.quick else 4)
    args.generations = args.generations or (2 if args.quick else 4)
    args.completion_length = args.completion_length or (8 if args.quick else 32)
    args.steps = args.steps or (2 if args.quick else 6)
    args.repeats = args.repeats or (1 if args.quick else 2)
    if args.steps < 2:
        parser.error("--steps must be at least 2 (the first step is the untimed warm-up)")
    if args.generations < 2:
        parser.error("--generations must be at least 2 (advantages are normalised within a group)")
    return args


def _hidden():
    import argparse

    return argparse.SUPPRESS


# ----------------------------------------------------------------------------- model


def fresh_model_dir(folder: Path, args) -> dict:
    """A freshly initialised MiniMind + the shipped tokenizer: the start model of both sides."""
    from minimind_hf import preset_config
    from minimind_hf.tokenizer import load_tokenizer

    tokenizer = load_tokenizer()
    config = preset_config(
        args.preset,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return common.save_fresh_model(folder, config, tokenizer, args.seed, args.preset)


# ----------------------------------------------------------------------------- child: shared


class Clock:
    """(wall, cpu) marks; ``phase(name)`` adds the time of a block to the current step's phases."""

    def __init__(self):
        self.marks: list[tuple[float, float]] = []
        self.steps: list[dict[str, list[float]]] = []  # per step: phase -> [wall, cpu]
        self.current: dict[str, list[float]] = {}

    def mark(self) -> None:
        common.sync()
        self.marks.append((time.perf_counter(), time.process_time()))
        if len(self.marks) > 1:
            self.steps.append(self.current)
        self.current = {}

    def add(self, name: str, wall: float, cpu: float) -> None:
        spent = self.current.setdefault(name, [0.0, 0.0])
        spent[0] += wall
        spent[1] += cpu

    def phase(self, name: str):
        import contextlib

        @contextlib.contextmanager
        def block():
            common.sync()
            w, c = time.perf_counter(), time.process_time()
            try:
                yield
            finally:
                common.sync()
                self.add(name, time.perf_counter() - w, time.process_time() - c)

        return block()


class Memory:
    """RSS when training begins, then the high-water mark of the training steps."""

    def __init__(self):
        self.before_kib = self.peak_kib = None
        self.reset = False

    def begin(self) -> None:
        self.before_kib = _status_kib("VmRSS")
        self.reset = _reset_peak_rss()

    def end(self) -> None:
        self.peak_kib = _status_kib("VmHWM") if self.reset else None
        if self.peak_kib is None:  # no resettable mark: the lifetime peak
            self.peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def figures(self) -> dict:
        lifetime = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, self.peak_kib)
        return {
            "rss_at_train_begin_mib": round(self.before_kib / 1024, 1) if self.before_kib else None,
            "peak_rss_mib": round(self.peak_kib / 1024, 1),
            "train_peak_increase_mib": round((self.peak_kib - self.before_kib) / 1024, 1) if self.before_kib else None,
            "peak_reset_at_train_begin": self.reset,
            "lifetime_peak_rss_mib": round(lifetime / 1024, 1),
        }


class Profiler:
    """cProfile over the timed steps (enabled after the warm-up step, disabled after the last)."""

    def __init__(self, enabled: bool):
        import cProfile

        self.profile = cProfile.Profile() if enabled else None
        self.running = False

    def start(self) -> None:
        if self.profile is not None and not self.running:
            self.profile.enable()
            self.running = True

    def stop(self) -> None:
        if self.running:
            self.profile.disable()
            self.running = False

    def figures(self, steps: int, top: int = 25) -> dict | None:
        if self.profile is None:
            return None
        import pstats

        stats = pstats.Stats(self.profile).stats  # (file, line, name) -> (calls, primitive calls, tottime, cumtime, _)

        def where(key) -> str:
            file, line, name = key
            for marker in ("site-packages/", "minimind_hf/", "benchmarks/"):
                if marker in file:
                    file = file.split(marker, 1)[1] if marker == "site-packages/" else marker + file.split(marker, 1)[1]
                    break
            return f"{file}:{line}({name})" if line else name

        def rows(index: int) -> list[dict]:
            ranked = sorted(stats.items(), key=lambda kv: -kv[1][index])[:top]
            return [
                {
                    "function": where(key),
                    "calls_per_step": round(v[1] / steps, 1),
                    "ms_per_step": round(v[index] / steps * 1e3, 3),
                }
                for key, v in ranked
            ]

        return {
            "steps": steps,
            "note": "cProfile (adds overhead per Python call): use to see where, not how fast",
            "cumulative": rows(3),
            "self": rows(2),
        }


def step_figures(clock: Clock, completion_tokens: list[int], prompt_tokens: list[int] | None) -> dict:
    """Per-step times (first step excluded), rates and the phase split."""
    marks = clock.marks
    walls = [b[0] - a[0] for a, b in zip(marks, marks[1:])]
    cpus = [b[1] - a[1] for a, b in zip(marks, marks[1:])]
    if len(walls) != len(completion_tokens):
        raise RuntimeError(f"{len(walls)} timed steps but {len(completion_tokens)} completion counts")
    timed = slice(1, None)  # the first step is the warm-up
    wall, cpu, tokens = sum(walls[timed]), sum(cpus[timed]), sum(completion_tokens[timed])
    steps = len(walls) - 1
    phases = {}
    for name in PHASES:
        phases[name] = {
            "wall_s": round(sum(s.get(name, [0.0, 0.0])[0] for s in clock.steps[timed]) / steps, 5),
            "cpu_s": round(sum(s.get(name, [0.0, 0.0])[1] for s in clock.steps[timed]) / steps, 5),
        }
    # "update" = what the step spent outside the other phases (backward, optimizer, data, logging, ...)
    for key, seconds in (("wall_s", wall), ("cpu_s", cpu)):
        inside = sum(phases[n][key] for n in PHASES if n != "update")
        phases["update"][key] = round(seconds / steps - inside, 5)
    out = {
        "timed_steps": steps,
        "step_wall_s": [round(t, 5) for t in walls],
        "step_cpu_s": [round(t, 5) for t in cpus],
        "completion_tokens": completion_tokens,
        "mean_step_wall_s": round(wall / steps, 5),
        "mean_step_cpu_s": round(cpu / steps, 5),
        "completion_tokens_per_wall_s": round(tokens / wall, 2),
        "completion_tokens_per_cpu_s": round(tokens / cpu, 2),
        "mean_completion_length": round(tokens / steps, 2),  # per step; divided by B*G below
        "phases": phases,
    }
    gen = phases["generate"]
    out["generate_tokens_per_wall_s"] = round(tokens / steps / gen["wall_s"], 2) if gen["wall_s"] else None
    out["generate_tokens_per_cpu_s"] = round(tokens / steps / gen["cpu_s"], 2) if gen["cpu_s"] else None
    if prompt_tokens is not None:
        out["prompt_tokens"] = prompt_tokens
    return out


# ----------------------------------------------------------------------------- child: reference


def child_reference(spec: dict) -> dict:
    """MiniMind's train_grpo.py loop at the design point (see the module docstring)."""
    import copy
    import random

    import torch
    from transformers import AutoModelForCausalLM

    import minimind_hf  # noqa: F401  (registers MiniMind with the Auto classes)
    from minimind_hf.data.rl import load_answered_prompts
    from minimind_hf.tokenizer import load_tokenizer
    from minimind_hf.training.rewards import ExactAnswer

    B, G, L, N = spec["prompts"], spec["generations"], spec["completion_length"], spec["steps"]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(spec["seed"])
    tokenizer = load_tokenizer(spec["model_dir"])
    policy = AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32).to(device).train()
    reference = copy.deepcopy(policy).eval().requires_grad_(False)
    rows = load_answered_prompts(PROMPTS, seed=42)
    rng = random.Random(spec["seed"])
    prompts = [
        (
            tokenizer.apply_chat_template(
                row["prompt"], add_generation_prompt=True, tokenize=False, enable_thinking=rng.random() < THINKING_RATIO
            ),
            row["answer"],
        )
        for row in rows
    ]
    rng.shuffle(prompts)
    reward = ExactAnswer()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(  # transformers' constant_with_warmup
        optimizer, lambda s: s / max(1, WARMUP_STEPS) if s < WARMUP_STEPS else 1.0
    )
    eos = tokenizer.eos_token_id

    def token_logps(model, ids, attention_mask, n_keep):
        logits = model(input_ids=ids, attention_mask=attention_mask, logits_to_keep=n_keep + 1).logits[:, :-1, :]
        return torch.gather(logits.log_softmax(dim=-1), 2, ids[:, -n_keep:].unsqueeze(-1)).squeeze(-1)

    clock, memory, completion_tokens, prompt_tokens = Clock(), Memory(), [], []
    profiler = Profiler(spec.get("profile", False))
    memory.begin()
    clock.mark()
    for step in range(N):
        if step == 1:
            profiler.start()
        start = (step * B) % len(prompts)
        batch = (prompts + prompts)[start : start + B]
        texts, answers = [t for t, _ in batch], [a for _, a in batch]
        with clock.phase("score"):  # as TRL's, outside its generation call
            enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False).to(
                device
            )
        with clock.phase("generate"):
            with torch.no_grad():
                outputs = policy.generate(
                    **enc,
                    do_sample=True,
                    temperature=spec["temperature"],
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=L,
                    num_return_sequences=G,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=eos,
                )  # [B*G, P+R]
            completion_ids = outputs[:, enc["input_ids"].size(1) :]
            is_eos = completion_ids == eos
            eos_idx = torch.full((is_eos.size(0),), is_eos.size(1), dtype=torch.long, device=device)
            eos_idx[is_eos.any(dim=1)] = is_eos.int().argmax(dim=1)[is_eos.any(dim=1)]
            positions = torch.arange(is_eos.size(1), device=device).expand(is_eos.size(0), -1)
            completion_mask = (positions <= eos_idx.unsqueeze(1)).int()
        with clock.phase("score"):
            attention_mask = torch.cat([enc["attention_mask"].repeat_interleave(G, dim=0), completion_mask], dim=1)
            n_keep = completion_ids.size(1)
            with torch.no_grad():
                ref_logps = token_logps(reference, outputs, attention_mask, n_keep)
            completions = tokenizer.batch_decode(completion_ids * completion_mask, skip_special_tokens=True)
            scores = reward(
                [t for t in texts for _ in range(G)], completions, answer=[a for a in answers for _ in range(G)]
            )
            rewards = torch.tensor([0.0 if s is None else s for s in scores], device=device)
            grouped = rewards.view(-1, G)
            mean = grouped.mean(dim=1).repeat_interleave(G)
            std = grouped.std(dim=1).repeat_interleave(G)
            advantages = ((rewards - mean) / (std + 1e-4)).unsqueeze(1)
        with clock.phase("loss"):
            logps = token_logps(policy, outputs, attention_mask, n_keep)
            ratio = torch.exp(logps - logps.detach())
            per_token = -torch.clamp(ratio, max=EPSILON_HIGH).detach() * advantages * logps
            kl = ref_logps - logps
            per_token = per_token + spec["beta"] * (torch.exp(kl) - kl - 1)
            mask = completion_mask.float()
            loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        completion_tokens.append(int(completion_mask.sum()))
        prompt_tokens.append(int(enc["attention_mask"].sum()) * G)
        clock.mark()
    profiler.stop()
    memory.end()
    return {
        "side": "reference",
        "profile": profiler.figures(N - 1),
        "attn_implementation": policy.config._attn_implementation,
        "loss_last": round(float(loss), 5),
        **step_figures(clock, completion_tokens, prompt_tokens),
        **memory.figures(),
    }


# ----------------------------------------------------------------------------- child: ours


def instrument_trl(clock: Clock) -> None:
    """Time GRPOTrainer's own phases (this child process only): its generation call, the whole
    rollout + scoring (minus generation: reference log-probs, rewards, advantages) and compute_loss."""
    import functools

    from trl.trainer.grpo_trainer import GRPOTrainer

    def timed(name: str, phase: str, subtract: str | None = None):
        original = getattr(GRPOTrainer, name)

        @functools.wraps(original)
        def wrapper(self, *args, **kwargs):
            common.sync()
            inner = list(clock.current.get(subtract, [0.0, 0.0])) if subtract else None
            w, c = time.perf_counter(), time.process_time()
            try:
                return original(self, *args, **kwargs)
            finally:
                common.sync()
                wall, cpu = time.perf_counter() - w, time.process_time() - c
                if subtract:  # the nested phase was added meanwhile: count it once
                    now = clock.current.get(subtract, [0.0, 0.0])
                    wall, cpu = wall - (now[0] - inner[0]), cpu - (now[1] - inner[1])
                clock.add(phase, wall, cpu)

        setattr(GRPOTrainer, name, wrapper)

    timed("_generate_single_turn", "generate")
    timed("_generate_and_score_completions", "score", subtract="generate")
    timed("compute_loss", "loss")


def child_ours(spec: dict) -> dict:
    """The grpo stage through the training entry point, at the design point."""
    import transformers.trainer as trainer_module
    from transformers import TrainerCallback

    B, G, L, N = spec["prompts"], spec["generations"], spec["completion_length"], spec["steps"]
    clock, memory, profiler = Clock(), Memory(), Profiler(spec.get("profile", False))
    if spec["side"] == "ours_compact":  # what-if (this child only): score completion positions only, as on CUDA
        import trl.trainer.utils as trl_utils

        trl_utils._use_triton = lambda device: True  # read only for `compact`; the kernel module keeps its own

    class Marks(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            memory.begin()
            clock.current = {}
            clock.mark()

        def on_step_end(self, args, state, control, **kwargs):
            clock.mark()
            if state.global_step == 1:
                profiler.start()
            elif state.global_step >= N:
                profiler.stop()

        def on_train_end(self, args, state, control, **kwargs):
            memory.end()

    instrument_trl(clock)
    trainer_module.DEFAULT_CALLBACKS.append(Marks())
    run = common.run_recipe(
        RECIPE,
        {
            "model_name_or_path": spec["model_dir"],
            "train_files": [PROMPTS],
            "eval_files": [],
            "reward_funcs": ["exact_answer"],
            "reward_weights": [1.0],
            "thinking_ratio": THINKING_RATIO,
            "loss_type": "cispo",
            "beta": spec["beta"],
            "epsilon_high": EPSILON_HIGH,
            "num_generations": G,
            "max_completion_length": L,
            "temperature": spec["temperature"],
            "per_device_train_batch_size": B * G,
            "gradient_accumulation_steps": 1,
            "max_steps": N,
            "learning_rate": LEARNING_RATE,
            "lr_scheduler_type": "constant_with_warmup",
            "warmup_steps": WARMUP_STEPS,
            "max_grad_norm": MAX_GRAD_NORM,
            "logging_steps": 1,
            "report_to": "none",
            "disable_tqdm": True,
            "dataloader_num_workers": 0,
            "output_dir": spec["output_dir"],
            "seed": spec["seed"],
        },
    )
    logs = {h["step"]: h for h in run["state"]["log_history"] if "completions/mean_length" in h}
    completion_tokens = [round(logs[s]["completions/mean_length"] * B * G) for s in range(1, N + 1)]
    seen = [0] + [logs[s]["num_tokens"] for s in range(1, N + 1)]
    prompt_tokens = [int(b - a) - c for a, b, c in zip(seen, seen[1:], completion_tokens)]
    return {
        "side": spec["side"],
        "profile": profiler.figures(N - 1),
        "run_info_rl": {k: v.get("last") for k, v in run["run_info"].get("rl", {}).items()},
        "loss_last": logs[N].get("loss"),
        **step_figures(clock, completion_tokens, prompt_tokens),
        **memory.figures(),
    }


def child(spec: dict) -> dict:
    import torch

    common.quiet_libraries()
    if spec["threads"] > 0:
        torch.set_num_threads(spec["threads"])
    out = (child_reference if spec["side"] == "reference" else child_ours)(spec)
    out["torch_threads"] = torch.get_num_threads()
    return out


def run_child(spec: dict, work: Path) -> dict:
    env = {
        "HF_DATASETS_CACHE": str(work / "hf_datasets"),  # keep Arrow caches out of the user's cache
        "MINIMIND_HF_HOME": str(work / "home"),
    }
    return common.run_child("benchmarks.bench_grpo", spec, f"grpo child {spec['side']}", 1800, env)


# ----------------------------------------------------------------------------- parent


def side_figures(runs: list[dict], clock: str, completions_per_step: int) -> dict:
    key = "cpu" if clock == "cpu" else "wall"
    med = common.median
    return {
        "clock": clock,
        "step_time_s": round(med([r[f"mean_step_{key}_s"] for r in runs]), 5),
        "completion_tokens_per_s": round(med([r[f"completion_tokens_per_{key}_s"] for r in runs]), 2),
        "step_wall_s": round(med([r["mean_step_wall_s"] for r in runs]), 5),
        "completion_tokens_per_wall_s": round(med([r["completion_tokens_per_wall_s"] for r in runs]), 2),
        "generate_tokens_per_s": round(med([r[f"generate_tokens_per_{key}_s"] or 0.0 for r in runs]), 2),
        "mean_completion_length": round(med([r["mean_completion_length"] for r in runs]) / completions_per_step, 2),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "train_peak_increase_mib": max((r["train_peak_increase_mib"] or 0.0) for r in runs),
        "lifetime_peak_rss_mib": max(r["lifetime_peak_rss_mib"] for r in runs),
        "phases_s": {p: round(med([r["phases"][p][f"{key}_s"] for r in runs]), 5) for p in PHASES},
        "runs": runs,
    }


def paired(ours: list[dict], reference: list[dict], key: str) -> dict:
    ratios = sorted(o[key] / r[key] for o, r in zip(ours, reference))
    return {"median": round(common.median(ratios), 4), "rounds": [round(x, 4) for x in ratios]}


def compare(figures: dict, runs: dict, side: str, key: str) -> dict:
    """Paired ratios side/reference per round (step time: > 1 is slower; tokens/s: > 1 is faster), peak RSS ratio."""
    ours, ref = runs[side], runs["reference"]

    def phase(name):
        return [{"t": r["phases"][name][f"{key}_s"]} for r in ours], [{"t": r["phases"][name][f"{key}_s"]} for r in ref]

    mine, theirs = figures[side], figures["reference"]
    return {
        "clock": key,
        "step_time": paired(ours, ref, f"mean_step_{key}_s"),
        "completion_tokens_per_s": paired(ours, ref, f"completion_tokens_per_{key}_s"),
        "step_time_wall": paired(ours, ref, "mean_step_wall_s"),
        "completion_tokens_per_wall_s": paired(ours, ref, "completion_tokens_per_wall_s"),
        "phase_time": {p: paired(*phase(p), "t") for p in PHASES},
        "peak_rss": round(mine["peak_rss_mib"] / theirs["peak_rss_mib"], 4),
        "train_peak_increase": round(mine["train_peak_increase_mib"] / max(1e-9, theirs["train_peak_increase_mib"]), 4),
    }


def explain(figures: dict, side: str, clock: str) -> str:
    """Where ``side`` spends more (or less) time per step than the reference, phase by phase."""
    o, r = figures[side]["phases_s"], figures["reference"]["phases_s"]
    parts = [f"{p} {o[p] * 1e3:.1f} vs {r[p] * 1e3:.1f} ms ({(o[p] - r[p]) * 1e3:+.1f})" for p in PHASES]
    gap = figures[side]["step_time_s"] - figures["reference"]["step_time_s"]
    biggest = max(PHASES, key=lambda p: abs(o[p] - r[p]))
    return (
        f"per timed step ({clock} clock), {side} vs reference: {'; '.join(parts)}; step {gap * 1e3:+.1f} ms, "
        f"largest difference in '{biggest}' (generate = the generate call; score = reference log-probs, "
        "rewards, advantages and, for ours, TRL's tokenisation, decoding and metrics; loss = policy forward + "
        "loss; update = backward, clipping, AdamW and the rest of the training loop)"
    )


@common.restores_globals
def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))), flush=True)
        return {}
    result = common.start(
        args,
        "grpo",
        "GRPO step time, rollout tokens/s and peak RSS: grpo stage (TRL) vs MiniMind's train_grpo.py loop",
        recipe="recipes/grpo.yaml",
        prompts_data=PROMPTS,
        completions_per_step=args.prompts * args.generations,
        loss="cispo (epsilon_high 5.0) + beta * k3 KL, token-level mean",
        optimizer=f"AdamW lr {LEARNING_RATE}, constant_with_warmup {WARMUP_STEPS}, max_grad_norm {MAX_GRAD_NORM}",
    )
    result["config"].pop("child", None)
    work = Path(tempfile.mkdtemp(prefix="bench_grpo_"))
    runs: dict[str, list[dict]] = {side: [] for side in args.sides}
    try:
        model_dir = work / "fresh_model"
        result["config"]["model"] = fresh_model_dir(model_dir, args)

        def spec(side: str, name: str, profile: bool = False) -> dict:
            return {
                "side": side,
                "model_dir": str(model_dir),
                "output_dir": str(work / name),
                "prompts": args.prompts,
                "generations": args.generations,
                "completion_length": args.completion_length,
                "steps": args.steps,
                "temperature": args.temperature,
                "beta": args.beta,
                "seed": args.seed,
                "threads": args.threads,
                "profile": profile,
            }

        for repeat in range(args.repeats):
            order = args.sides if repeat % 2 == 0 else args.sides[::-1]
            for side in order:
                runs[side].append(run_child(spec(side, f"{side}_{repeat}"), work))
        if args.profile:  # separate runs: cProfile's per-call overhead must not touch the timed ones
            result["figures"]["profile"] = {
                side: run_child(spec(side, f"{side}_profile", profile=True), work)["profile"] for side in args.sides
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)

    per_step = args.prompts * args.generations
    for side, side_runs in runs.items():
        result["figures"][side] = side_figures(side_runs, args.clock, per_step)
    key = "cpu" if args.clock == "cpu" else "wall"
    for side in (s for s in args.sides if s != "reference"):
        if "reference" not in runs:
            break
        name = f"{side}_vs_reference"
        result["figures"][name] = ratio = compare(result["figures"], runs, side, key)
        result.note(
            f"{side}/reference: step time {ratio['step_time']['median']}x, rollout tokens/s "
            f"{ratio['completion_tokens_per_s']['median']}x ({args.clock} clock, median of {args.repeats} paired "
            f"rounds; wall clock {ratio['step_time_wall']['median']}x / "
            f"{ratio['completion_tokens_per_wall_s']['median']}x), peak RSS during training {ratio['peak_rss']}x"
        )
        result.note(explain(result["figures"], side, args.clock))
    result.note(
        f"clock {args.clock}, torch threads {args.threads}; one fresh child process per run, sides alternating; "
        f"the first of {args.steps} steps of each run is the untimed warm-up; no target (context figures)"
    )
    rows = []
    for side in runs:
        f = result["figures"][side]
        rows.append(
            {
                "side": side,
                f"step {args.clock} s": f["step_time_s"],
                "rollout tok/s": f["completion_tokens_per_s"],
                "generate tok/s": f["generate_tokens_per_s"],
                "completion len": f["mean_completion_length"],
                **{f"{p} ms": round(f["phases_s"][p] * 1e3, 2) for p in PHASES},
                "peak RSS MiB": f["peak_rss_mib"],
                "train +MiB": f["train_peak_increase_mib"],
            }
        )
    return common.finish(result, args, rows)


if __name__ == "__main__":
    main()
