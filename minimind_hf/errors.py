"""Error types shared by every layer, importable without torch (a CLI catches them before it
has imported anything heavy)."""


class ModelLoadError(ValueError):
    """A model folder that cannot be loaded exactly: names the folder, the file or the tensors."""
