"""The data benchmark runs end to end at a toy size and writes a complete JSON result."""

import importlib.util
import json
from pathlib import Path

# benchmarks/ is not an installed package and the repository root is not on pytest's path.
_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_data.py"
_SPEC = importlib.util.spec_from_file_location("bench_data", _PATH)
bench_data = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench_data)


def test_bench_data_smoke(tmp_path):
    output = tmp_path / "data.json"
    summary = bench_data.main(["--records", "50", "--repeats", "1", "--warmup-records", "10",
                               "--num-proc", "1", "2", "--output", str(output)])
    result = json.loads(output.read_text(encoding="utf-8"))
    assert result == json.loads(json.dumps(summary))
    assert {"benchmark", "machine", "versions", "config", "data", "results", "ratio_vs_naive",
            "cpu_ratio_vs_naive", "verification"} <= set(result)
    assert result["config"]["records"] == 50 and result["config"]["num_proc"] == [1, 2]
    assert set(result["results"]) == {"naive", "ours_num_proc_1", "ours_num_proc_2"}
    for figures in result["results"].values():
        assert len(figures["wall_s"]) == 1 and figures["records_per_s"] > 0 and figures["records_per_cpu_s"] > 0
    assert set(result["ratio_vs_naive"]) == {"ours_num_proc_1", "ours_num_proc_2"}
    assert result["verification"]["mismatches"] == 0
    assert result["verification"]["rows_compared"] == result["data"]["rows_kept"] > 0
    assert result["versions"]["transformers"] and result["machine"]["cpu_count"]
