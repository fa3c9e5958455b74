"""For the benchmark smoke tests: `benchmarks` importable, and a benchmark run into a JSON file."""

import json
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
    sys.path.insert(0, ROOT)


def run_to_file(main, argv: list[str], output: Path) -> dict:
    """``main(argv + ["--output", output])``; the JSON it wrote, checked to be what it returned."""
    summary = main([*argv, "--output", str(output)])
    result = json.loads(output.read_text(encoding="utf-8"))
    assert result == json.loads(json.dumps(summary))
    return result
