#!/usr/bin/env python
"""The whole life cycle on embedded data, one command, one report card (same as `minimind-quickstart`).

    python scripts/quickstart.py [--stages a,b] [--force STAGE] [--max_steps N] [--config_file F]
"""

from minimind_hf.quickstart import run

if __name__ == "__main__":
    run()
