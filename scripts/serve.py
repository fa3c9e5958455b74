#!/usr/bin/env python
"""OpenAI-compatible server, loopback by default: `python scripts/serve.py MODEL` (= minimind-serve)."""

from minimind_hf.cli.serve import main

if __name__ == "__main__":
    main()
