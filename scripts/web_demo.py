#!/usr/bin/env python
"""Streamlit chat page for a model folder: `python scripts/web_demo.py MODEL [--port 8501]` (= minimind-web-demo)."""

from minimind_hf.cli.web_demo import main

if __name__ == "__main__":
    main(__file__)
