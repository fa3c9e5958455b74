"""Upload an export folder to a Hugging Face Hub model repo."""

from __future__ import annotations

from pathlib import Path


def push_to_hub(folder: str | Path, repo_id: str, private: bool = False, commit_message: str | None = None) -> str:
    """Create the model repo (if needed) and upload `folder`. The token comes from the usual
    places (HF_TOKEN, `hf auth login`)."""
    from huggingface_hub import HfApi

    api = HfApi()
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message=commit_message or "Upload MiniMind export (minimind-hf)",
    )
    return str(url)
