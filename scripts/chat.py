#!/usr/bin/env python
"""Terminal chat with streaming output.

    python scripts/chat.py MODEL [--system TEXT] [--think] [--temperature 0.85] [--max-new-tokens 512]
    python scripts/chat.py MINIMIND_V_MODEL --image PATH [--image PATH ...]   (/image PATH in the chat)
"""

import sys

from minimind_hf.serving.chat_cli import main

if __name__ == "__main__":
    sys.exit(main())
