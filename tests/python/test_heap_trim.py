"""The heap trimmer (``service/heap_trim.py``): ``malloc_trim`` really hands a fragmented heap's
free pages back (resident memory measured from /proc), and ``relay serve`` runs it on its
interval (``relay_process_heap_trims_total`` on ``/metrics``)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from relay_context.service.heap_trim import HeapTrimmer
from service_support import run_server, service_env

pytestmark = pytest.mark.skipif(
    not HeapTrimmer(1).available, reason="the C library has no malloc_trim (not glibc)"
)

#: A child process fragments its heap the way a server's does: 200 MiB of 2 KiB blocks (too big
#: for Python's small-object allocator, so they come from malloc), then all but every 64th freed.
#: The survivors pin the heap, so free() cannot give the holes between them back; a trim can.
FRAGMENT = textwrap.dedent(
    """
    import json, sys
    from relay_context.service.heap_trim import HeapTrimmer

    def anon_mib():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no RssAnon")

    before = anon_mib()
    blocks = [bytes(2048) for _ in range(100_000)]
    kept = blocks[::64]
    del blocks
    fragmented = anon_mib()
    released = HeapTrimmer(1).trim() if sys.argv[1] == "trim" else False
    print(json.dumps({"before": before, "fragmented": fragmented, "after": anon_mib(),
                      "released": released, "kept": len(kept)}))
    """
)


def fragment(mode: str) -> dict[str, float]:
    import json

    out = subprocess.run(
        [sys.executable, "-c", FRAGMENT, mode], capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def test_a_fragmented_heap_keeps_its_pages_until_trimmed() -> None:
    untrimmed = fragment("none")
    # The setup is what the trimmer is for: free() alone left ~200 MiB resident.
    assert untrimmed["after"] - untrimmed["before"] > 150

    trimmed = fragment("trim")
    assert trimmed["released"]
    assert trimmed["fragmented"] - trimmed["before"] > 150
    # Every whole free page went back; what stays is the 1/64 kept and page remnants.
    assert trimmed["after"] - trimmed["before"] < 30


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval_seconds"):
        HeapTrimmer(-1)


def trims(metrics: str) -> float:
    found = re.findall(r'^relay_process_heap_trims_total\{released="\w+"\} (\S+)$', metrics, re.M)
    return sum(float(v) for v in found)


@pytest.mark.parametrize(("interval", "expected"), [("0.2", "trims"), ("0", "none")])
def test_relay_serve_trims_on_its_interval(tmp_path: Path, interval: str, expected: str) -> None:
    env = service_env(tmp_path / "state", heap_trim_interval_seconds=interval)
    with run_server(env, tmp_path) as server:
        deadline = time.monotonic() + 10
        count = trims(server.client.get("/metrics").text)
        while expected == "trims" and count < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            count = trims(server.client.get("/metrics").text)
        if expected == "trims":
            assert count >= 3
        else:
            time.sleep(1.0)  # five intervals of the other case: none may have happened
            assert trims(server.client.get("/metrics").text) == 0
