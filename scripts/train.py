#!/usr/bin/env python
"""Run any training stage from a recipe: `accelerate launch scripts/train.py recipes/sft.yaml [--key value ...]`
(= minimind-train)."""

from minimind_hf.cli.train import run

if __name__ == "__main__":
    run()
