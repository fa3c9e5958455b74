#!/usr/bin/env python
"""OpenAI-compatible server (FastAPI + uvicorn), loopback by default; MiniMind-V folders take
images as data-URL `image_url` content parts.

    python scripts/serve.py MODEL [--host 127.0.0.1] [--port 8000] [--model-name NAME]
"""

from minimind_hf.serving.server import main

if __name__ == "__main__":
    main()
