#!/usr/bin/env python
"""Evaluate a model folder: `python scripts/eval.py MODEL --task ppl|ceval|lm-eval|arithmetic|toolcall` (= minimind-eval)."""  # noqa: E501

from minimind_hf.cli.eval import run

if __name__ == "__main__":
    run()
