#!/usr/bin/env python
"""Terminal chat with streaming output.

    python scripts/chat.py MODEL [--system TEXT] [--think] [--temperature 0.85] [--max-new-tokens 512]
"""

import sys

from minimind_hf.serving.chat_cli import main

if __name__ == "__main__":
    sys.exit(main())
