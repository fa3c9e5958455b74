#!/usr/bin/env python
"""Terminal chat with streaming output: `python scripts/chat.py MODEL [--image PATH]` (= minimind-chat)."""

import sys

from minimind_hf.cli.chat import main

if __name__ == "__main__":
    sys.exit(main())
