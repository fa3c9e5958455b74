"""Training stages driven by YAML recipes (see scripts/train.py)."""
