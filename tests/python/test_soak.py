"""The short soak: two minutes of mixed gateway and context traffic against a real ``relay
serve`` (``benchmarks/soak.py``), whose resident memory must stay flat and which must answer
every request. The full run (1M requests) is a benchmark, reported in the closing notes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from service_support import REPO

#: Memory growth allowed after the warm-up (the first minute), in MiB per minute of traffic.
#: Flat is ~0, and two minutes leave noise of a few MiB; the peers' leaking proxies grow by
#: gigabytes per day under such traffic (litellm #12685, #27954).
MAX_SLOPE_MIB_PER_MINUTE = 4.0


def test_two_minutes_of_mixed_traffic_keep_memory_flat(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "soak.py"),
            "--duration",
            "120",
            "--rate",
            "40",
            "--sample-seconds",
            "5",
            "--warmup",
            "0.5",
            # Full within the warm-up even at the few requests/s of a loaded machine.
            "--cache-bytes",
            "262144",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert report["errors"] == 0, report["first_errors"]
    assert report["requests"] >= 1_000, report  # enough traffic for the slope to mean something
    assert set(report["kinds"]) == {
        "chat",
        "chat_stream",
        "messages",
        "messages_stream",
        "repeated",
        "coalesced",
        "context_append",
        "context_get",
    }
    assert report["rss_slope_mib_per_minute"] < MAX_SLOPE_MIB_PER_MINUTE, run.stdout
