#!/usr/bin/env python
"""Loss / learning-rate / grad-norm curves of a run: `python scripts/plot.py OUTPUT_DIR` (= minimind-plot)."""

from minimind_hf.cli.plot import main

if __name__ == "__main__":
    main()
