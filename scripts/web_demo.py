#!/usr/bin/env python
"""Streamlit chat page for a model folder (starts `streamlit run` on this file by itself);
image upload for MiniMind-V folders.

    python scripts/web_demo.py MODEL [--host 127.0.0.1] [--port 8501]
"""

from minimind_hf.serving.web_demo import main

if __name__ == "__main__":
    main(__file__)
