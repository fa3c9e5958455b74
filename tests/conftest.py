import os
import sys

# Tests run offline: nothing may be fetched from a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, os.path.dirname(__file__))


import pytest


@pytest.fixture(scope="session", autouse=True)
def embedded_home(tmp_path_factory):
    """Built-in data sets are written once per test session into a temporary home."""
    home = tmp_path_factory.mktemp("minimind_home")
    old = os.environ.get("MINIMIND_HF_HOME")
    os.environ["MINIMIND_HF_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("MINIMIND_HF_HOME")
    else:
        os.environ["MINIMIND_HF_HOME"] = old
