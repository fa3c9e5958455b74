"""`minimind-serve MODEL` (= `python scripts/serve.py MODEL`): an OpenAI-compatible server
(FastAPI + uvicorn), loopback by default; MiniMind-V folders take images as data-URL
`image_url` content parts."""

from __future__ import annotations

from ..serving import server
from ..serving.server import ServerLimits


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description="Serve a MiniMind model with an OpenAI-compatible API.")
    p.add_argument("model", help="model folder (save_pretrained output with tokenizer files)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model-name", default=None, help="the id clients send as `model` (default: folder name)")
    p.add_argument("--max-tokens", type=int, default=512, help="completion length when a request sets none")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default="auto")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--log-level", default="info")
    default = ServerLimits()
    p.add_argument(
        "--max-body-mb",
        type=float,
        default=default.max_body_bytes / 2**20,
        help="largest request body in MiB (larger: 413)",
    )
    p.add_argument("--max-images", type=int, default=default.max_images, help="images per request (more: 400)")
    p.add_argument(
        "--max-image-pixels",
        type=int,
        default=default.max_image_pixels,
        help="width x height of one image, read from its header before decoding (more: 400)",
    )
    args = p.parse_args(argv)
    if args.max_body_mb <= 0 or args.max_images < 0 or args.max_image_pixels <= 0:
        p.error("--max-body-mb and --max-image-pixels must be positive, --max-images at least 0")
    limits = ServerLimits(int(args.max_body_mb * 2**20), args.max_images, args.max_image_pixels)
    from ..utils import ModelLoadError

    try:
        server.serve(
            args.model,
            args.host,
            args.port,
            args.model_name,
            args.max_tokens,
            args.log_level,
            limits,
            device=args.device,
            dtype=args.dtype,
            trust_remote_code=args.trust_remote_code,
        )
    except ModelLoadError as error:  # a damaged or mismatched folder: one clear message, exit code 2
        p.exit(2, f"error: {error}\n")


if __name__ == "__main__":
    main()
