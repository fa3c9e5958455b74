"""Command-line programs, one module each, installed as console scripts (setup.cfg) and
reachable as ``python scripts/NAME.py`` (three-line shims): minimind-train, minimind-eval,
minimind-export, minimind-convert, minimind-chat, minimind-serve, minimind-web-demo,
minimind-tokenizer, minimind-plot, minimind-quickstart."""
