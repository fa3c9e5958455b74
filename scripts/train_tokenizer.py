#!/usr/bin/env python
"""Train the MiniMind byte-level BPE tokenizer: `python scripts/train_tokenizer.py --output-dir DIR [--input FILES]`
(= minimind-tokenizer)."""

from minimind_hf.cli.tokenizer import main

if __name__ == "__main__":
    main()
