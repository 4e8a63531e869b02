"""``python -m fake_upstream --port 9100 [--key sk-fake]``: the fake upstream as a process."""

from __future__ import annotations

import argparse

import uvicorn

from .app import FakeUpstream


def main() -> None:
    parser = argparse.ArgumentParser(prog="fake_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--key", default=None, help="the only credential accepted")
    parser.add_argument("--no-record", action="store_true", help="keep no request log")
    args = parser.parse_args()
    app = FakeUpstream(required_key=args.key, record=not args.no_record)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
