"""The benchmark suite keeps working (bench/run.py): a partial run writes one JSON per case with its samples and
the verdict against the target; the table in RESULTS.md is replaced between its markers, the rest kept. No
timing is asserted: speed targets live in the benchmarks."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import run as bench  # noqa: E402


def test_a_partial_run_writes_one_result_per_case(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--only", "help", "--only", "validate-10",
                           "--repeat", "2", "--results", str(tmp_path)], capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: a target missed on a busy machine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["help.json", "validate-10.json"]
    help_ = json.loads((tmp_path / "help.json").read_text())
    assert len(help_["samples_s"]) == 2 and help_["min_s"] <= help_["median_s"] <= help_["max_s"]
    assert help_["met"] == (help_["median_s"] <= help_["target_s"]) and help_["max_rss_mib"] > 0
    assert json.loads((tmp_path / "validate-10.json").read_text())["target_s"] is None


def test_the_table_is_replaced_between_its_markers(tmp_path, monkeypatch):
    table = tmp_path / "RESULTS.md"
    table.write_text(f"# Results\n\nkept above\n\n{bench.START}\nold table\n{bench.END}\n\nkept below\n")
    monkeypatch.setattr(bench, "TABLE", table)
    result = {"case": "help", "what": "`--help`", "samples_s": [0.1, 0.2, 0.3], "min_s": 0.1, "median_s": 0.2,
              "max_s": 0.3, "max_rss_mib": 15, "target_s": 0.3, "size": None, "met": True,
              "when": "2026-11-30 12:00 UTC", "machine": "m, 2 cores"}
    bench.write_table([result, {**result, "what": "`validate`", "target_s": None, "met": None}])
    text = table.read_text()
    assert "old table" not in text and "kept above" in text and "kept below" in text
    assert "| `--help` | ≤ 0.3 s | 0.10 / 0.20 / 0.30 s | 15 MiB | yes |" in text
    assert "| `validate` | - | 0.10 / 0.20 / 0.30 s | 15 MiB | - |" in text
