"""Streamlit chat page: `python scripts/web_demo.py MODEL [--port 8501]` (= minimind-web-demo).

Run as a plain script it re-launches itself under `streamlit run` (loopback, headless, no
usage statistics); under Streamlit it draws the page. The model and its generation worker
are cached per process, so every browser tab shares one model and their answers queue.
For MiniMind-V folders the sidebar's image upload is enabled: the uploaded images go with the
next message, stay in the conversation (and in every later prompt), and the upload clears.
"""

from __future__ import annotations

import argparse
import os
import sys

IMAGE_TYPES = ["png", "jpg", "jpeg", "webp", "gif", "bmp"]  # what the upload widget offers for MiniMind-V


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="MiniMind web chat (Streamlit).")
    p.add_argument("model", help="model folder (save_pretrained output with tokenizer files)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--temperature", type=float, default=0.85, help="initial slider value (0 = greedy)")
    p.add_argument("--top-p", type=float, default=0.85)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--think", action="store_true", help="thinking toggle starts on")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--trust-remote-code", action="store_true")
    return p


def main(script: str = __file__, argv: list[str] | None = None) -> int:
    """Draw the page under Streamlit, else start Streamlit on `script` (a file that calls this main;
    this module itself by default, so its imports are absolute: Streamlit runs it as a plain file)."""
    from streamlit import runtime

    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if runtime.exists():
        run_page(args)
        return 0
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        os.path.abspath(script),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--",
        *argv,
    ]
    # Replace this process (same pid): whoever stops the demo stops Streamlit, with no orphan left.
    os.execv(sys.executable, command)
    return 0  # not reached


def run_page(args: argparse.Namespace) -> None:
    import streamlit as st

    from minimind_hf.serving.conversation import Conversation, start_turn
    from minimind_hf.serving.engine import RequestError, SamplingParams, load_engine
    from minimind_hf.serving.worker import GenerationWorker

    @st.cache_resource(show_spinner="Loading the model ...")
    def get_worker(path: str, device: str | None, dtype: str, trust_remote_code: bool) -> GenerationWorker:
        return GenerationWorker(load_engine(path, device=device, dtype=dtype, trust_remote_code=trust_remote_code))

    st.set_page_config(page_title="MiniMind", page_icon="💬")
    worker = get_worker(args.model, args.device, args.dtype, args.trust_remote_code)
    engine = worker.engine
    state = st.session_state
    if "conversation" not in state:
        state.conversation = Conversation()
        state.upload_round = 0  # a new uploader key empties the widget once its images are sent

    with st.sidebar:
        st.header("Settings")
        thinking = st.toggle("Thinking", value=args.think, help="let the model reason in <think> before answering")
        temperature = st.slider("Temperature", 0.0, 1.5, float(args.temperature), 0.05, help="0 = greedy")
        top_p = st.slider("Top-p", 0.05, 1.0, float(args.top_p), 0.05)
        top_k = st.slider("Top-k (0 = off)", 0, 100, 0)
        repetition_penalty = st.slider("Repetition penalty", 1.0, 2.0, 1.0, 0.05)
        max_cap = max(16, min(engine.context_length, 4096))
        max_new_tokens = st.slider("Max new tokens", 16, max_cap, min(args.max_new_tokens, max_cap))
        system = st.text_area("System prompt", value="", placeholder="optional")
        if engine.accepts_images:
            images = st.file_uploader(
                "Images",
                type=IMAGE_TYPES,
                accept_multiple_files=True,
                key=f"images-{state.upload_round}",
                help="sent with your next message",
            )
        else:
            images = None
            st.file_uploader("Images", disabled=True, help="this model does not accept images")
            st.caption("This model does not accept images (MiniMind-V does).")
        if st.button("Clear chat", width="stretch"):
            state.conversation.reset()

    st.title("MiniMind")
    st.caption(f"{engine.name} · context {engine.context_length} tokens")
    conversation: Conversation = state.conversation
    conversation.system = system.strip() or None

    for message in conversation.messages:
        with st.chat_message(message["role"]):
            if message.get("reasoning_content"):
                with st.expander("Thinking"):
                    st.markdown(message["reasoning_content"])
            _show_images(message["content"])
            st.markdown(_text_of(message["content"]))

    prompt = st.chat_input("Message MiniMind")
    if not prompt:
        return
    urls = _uploaded_images(images or [])
    if urls is None:
        return
    conversation.add_user(prompt, urls)
    with st.chat_message("user"):
        _show_images(conversation.messages[-1]["content"])
        st.markdown(prompt)
    params = SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        top_k=top_k,
        repetition_penalty=repetition_penalty,
    )
    with st.chat_message("assistant"):
        try:
            turn = start_turn(worker, conversation, params, thinking=thinking)
        except RequestError as exc:
            conversation.pop_user()
            st.error(exc.message)
            return
        think_box, answer_box = st.empty(), st.empty()
        text = {"reasoning": "", "content": ""}
        try:
            for delta in turn:
                text[delta.kind] += delta.text
                if delta.kind == "reasoning":
                    think_box.info(text["reasoning"] + " ▌", icon="💭")
                else:
                    if text["reasoning"] and text["content"] == delta.text:  # thinking is over: drop its cursor
                        think_box.info(text["reasoning"], icon="💭")
                    answer_box.markdown(text["content"] + " ▌")
        except BaseException:  # Streamlit stops the run when the user acts mid-answer: drop the open turn
            conversation.pop_user()
            raise
        if text["reasoning"]:
            with think_box.expander("Thinking"):
                st.markdown(text["reasoning"])
        answer_box.markdown(text["content"] or "*(empty answer)*")
    conversation.add_assistant(turn.reply)
    if urls:  # sent: empty the upload widget so the images are not attached to the next message too
        state.upload_round += 1
        st.rerun()


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content or [] if part.get("type") == "text")


def _uploaded_images(files) -> list[str] | None:
    """Data URLs of the uploads, or None (after saying which) when one is not a readable image."""
    import streamlit as st

    from minimind_hf.serving.images import data_url, load_image

    urls = []
    for upload in files:
        mime = upload.type if (upload.type or "").startswith("image/") else "image/png"
        url = data_url(upload.getvalue(), mime)
        try:
            load_image(url)
        except ValueError:
            st.error(f"{upload.name} is not a readable image; remove it from the upload box and try again.")
            return None
        urls.append(url)
    return urls


def _show_images(content) -> None:
    import streamlit as st

    from minimind_hf.serving.images import load_image

    if isinstance(content, list):
        pictures = [load_image(part["image_url"]["url"]) for part in content if part.get("type") == "image_url"]
        if pictures:
            st.image(pictures, width=160)


if __name__ == "__main__":
    sys.exit(main(__file__))
