"""The conversations whose rendered chat templates `make_exports.py` records and
`check_exports.py` renders again: one definition for both sides (plain data, no imports)."""

CONVERSATIONS = {
    "single": [{"role": "user", "content": "What is 2+3?"}],
    "system-multi-turn": [
        {"role": "system", "content": "You are MiniMind."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Name a colour."},
    ],
}
