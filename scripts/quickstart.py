#!/usr/bin/env python
"""The whole life cycle on embedded data, one command, one report card (= minimind-quickstart)."""

from minimind_hf.cli.quickstart import run

if __name__ == "__main__":
    run()
