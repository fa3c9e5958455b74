#!/usr/bin/env python
"""Run any training stage from a recipe.

    accelerate launch scripts/train.py recipes/sft.yaml [--key value ...]
    python scripts/train.py recipes/pretrain.yaml --max_steps 10
"""

from minimind_hf.training.cli import run

if __name__ == "__main__":
    run()
