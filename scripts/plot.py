#!/usr/bin/env python
"""Loss / learning-rate / grad-norm curves from a training run's trainer_state.json.

    python scripts/plot.py OUTPUT_DIR [--output curves.png]
"""

from minimind_hf.plotting import main

if __name__ == "__main__":
    main()
