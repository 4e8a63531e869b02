"""``relay serve``'s app freezes its start-up heap (``service/gc_freeze.py``): after the lifespan
has started, the objects built so far are in the permanent generation, so a full collection no
longer walks them; ``GC_FREEZE=false`` leaves the collector as it was."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from service_support import service_env

#: The served app (``relay_context.main.serve_app``, what ``relay serve`` gives uvicorn) with its
#: lifespan entered as uvicorn enters it; then the collector's state.
SERVED = textwrap.dedent(
    """
    import asyncio, gc, json
    from relay_context.main import serve_app

    async def main():
        app = serve_app()
        async with app.router.lifespan_context(app):
            frozen = gc.get_freeze_count()
            tracked = len(gc.get_objects())
        print(json.dumps({"frozen": frozen, "tracked": tracked}))

    asyncio.run(main())
    """
)


def served_heap(tmp_path: Path, gc_freeze: str) -> dict[str, int]:
    env = service_env(tmp_path, gc_freeze=gc_freeze)
    out = subprocess.run(
        [sys.executable, "-c", SERVED], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_start_up_heap_is_frozen_out_of_full_collections(tmp_path: Path) -> None:
    frozen = served_heap(tmp_path / "on", "true")
    plain = served_heap(tmp_path / "off", "false")
    # Start-up builds well over 50,000 long-lived objects (~150,000 measured)...
    assert plain["frozen"] == 0
    assert plain["tracked"] > 50_000
    # ...which the freeze takes out of the collector's view: what is left to walk is what was
    # made after it, a small fraction.
    assert frozen["frozen"] > 50_000
    assert frozen["tracked"] < plain["tracked"] / 10
