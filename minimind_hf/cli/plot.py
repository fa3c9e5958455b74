"""`minimind-plot OUTPUT_DIR` (= `python scripts/plot.py OUTPUT_DIR`): loss / learning-rate /
grad-norm curves from a training run's trainer_state.json."""

from __future__ import annotations

import argparse

from ..plotting import DEFAULT_NAME, plot_training


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Plot loss / learning rate / grad norm from trainer_state.json.")
    p.add_argument("output_dir", help="a training output_dir (or a trainer_state.json file)")
    p.add_argument("--output", default=None, help=f"PNG path (default: OUTPUT_DIR/{DEFAULT_NAME})")
    args = p.parse_args(argv)
    try:
        path = plot_training(args.output_dir, args.output)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(path)


if __name__ == "__main__":
    main()
