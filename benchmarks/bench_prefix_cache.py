"""Prefix-stable context fitting vs sliding truncation: a simulated 300-turn coding session.

    python benchmarks/bench_prefix_cache.py [--turns 300] [--window 50000]

A client (the official SDK) talks to Relay, which forwards to the project's fake upstream; the
fake reports cached prompt tokens when a prefix repeats, as OpenAI (automatic, 1024 tokens and
up, 128-token steps) and Anthropic (at ``cache_control`` breakpoints) do. The session is a user
asking, a tool reading a file every other turn, and the assistant answering; it outgrows the
model's window (``--window``) many times over. Side by side, the same session:

* ``prefix-stable``: Relay's ``fit`` policy as shipped (cuts in steps of half the window);
* ``knapsack``: Relay's ``fit`` without prefix stability (``context_fit_prefix_stable=false``);
* ``sliding``: naive sliding truncation, done by the client: the oldest messages are dropped one
  by one until the prompt fits, as most gateways and agent frameworks do;

for an OpenAI model (gpt-4o) and an Anthropic one (claude-sonnet-4-5, Relay adding the
breakpoints). Printed per run: the share of prompt tokens read from the provider's cache, the
cost in USD from the ledger's prices (``x-relay-cost-usd``), and the cost ratio to prefix-stable.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "python"))

from gateway_support import running_gateway
from relay_context.core.tokenizer import TokenCounter

SYSTEM = "You are a coding agent working in a Python repository. " + " ".join(
    f"Convention {i}: small functions, typed, tested." for i in range(60)
)
RESERVED = 1024


def text(turn: int, what: str, lines: int) -> str:
    return "\n".join(
        f"{what} {turn}.{i}: def step_{turn}_{i}(x): return x + {i}" for i in range(lines)
    )


@dataclass
class Totals:
    prompt: int = 0
    cached: int = 0
    written: int = 0
    cost: float = 0.0


def session_turn(api: str, turn: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "user", "content": text(turn, "ask", 4)}]
    if turn % 2:
        return out
    if api == "openai":
        call = f"call_{turn}"
        out.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call,
                        "type": "function",
                        "function": {"name": "read_file", "arguments": f'{{"n":{turn}}}'},
                    }
                ],
            }
        )
        out.append({"role": "tool", "tool_call_id": call, "content": text(turn, "file", 40)})
    else:
        tid = f"toolu_{turn}"
        out.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": tid, "name": "read_file", "input": {}}],
            }
        )
        out.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tid, "content": text(turn, "file", 40)}
                ],
            }
        )
    return out


def slide(api: str, history: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """The client's naive truncation: drop the oldest message until the rest fits (and starts
    with a user question, so no tool result loses its call)."""
    counter = TokenCounter.for_model("gpt-4o")
    sizes = [counter.count(str(m.get("content"))) + 4 for m in history]
    start = 0
    total = sum(sizes)
    while total > budget and start < len(history) - 1:
        total -= sizes[start]
        start += 1
        while start < len(history) - 1 and not (
            history[start]["role"] == "user" and isinstance(history[start]["content"], str)
        ):
            total -= sizes[start]
            start += 1
    return history[start:]


def run(api: str, mode: str, turns: int, window: int) -> Totals:
    model = "bench-gpt" if api == "openai" else "bench-claude"
    models = {
        "bench-gpt": {"routes": ["openai/gpt-4o"], "context_window": window},
        "bench-claude": {"routes": ["anthropic/claude-sonnet-4-5"], "context_window": window},
    }
    overrides: dict[str, Any] = {"models": models}
    if mode == "knapsack":
        overrides["context_fit_prefix_stable"] = False
    totals = Totals()
    with tempfile.TemporaryDirectory() as tmp, running_gateway(Path(tmp), **overrides) as rig:
        rig.upstream.record = False
        oa = openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0)
        an = anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0)
        history: list[dict[str, Any]] = []
        budget = window - RESERVED - 2000  # the system prompt and priming
        for turn in range(turns):
            history += session_turn(api, turn)
            sent = slide(api, history, budget) if mode == "sliding" else history
            if api == "openai":
                raw = oa.chat.completions.with_raw_response.create(
                    model=model,
                    max_tokens=RESERVED,
                    messages=[{"role": "system", "content": SYSTEM}, *sent],  # type: ignore[list-item]
                )
                reply = raw.parse()
                assert reply.usage is not None
                details = reply.usage.prompt_tokens_details
                totals.prompt += reply.usage.prompt_tokens
                totals.cached += (details.cached_tokens or 0) if details else 0
            else:
                raw_an = an.messages.with_raw_response.create(
                    model=model,
                    max_tokens=RESERVED,
                    system=SYSTEM,
                    messages=sent,  # type: ignore[arg-type]
                )
                message = raw_an.parse()
                u = message.usage
                read = u.cache_read_input_tokens or 0
                written = u.cache_creation_input_tokens or 0
                totals.prompt += u.input_tokens + read + written
                totals.cached += read
                totals.written += written
                raw = raw_an  # type: ignore[assignment]
            totals.cost += float(raw.headers["x-relay-cost-usd"])
            history.append({"role": "assistant", "content": text(turn, "answer", 6)})
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--window", type=int, default=50_000)
    args = parser.parse_args()
    print(f"{args.turns}-turn coding session, window {args.window} tokens")
    print(
        f"{'api':<10}{'fitting':<15}{'cached share':>13}{'cache writes':>14}{'cost USD':>11}"
        f"{'cost / prefix-stable':>22}"
    )
    for api in ("openai", "anthropic"):
        results = {
            m: run(api, m, args.turns, args.window)
            for m in ("prefix-stable", "knapsack", "sliding")
        }
        base = results["prefix-stable"].cost
        for mode, t in results.items():
            share = t.cached / t.prompt if t.prompt else 0.0
            print(
                f"{api:<10}{mode:<15}{share:>12.1%}{t.written:>14}{t.cost:>11.4f}"
                f"{t.cost / base:>21.2f}x"
            )


if __name__ == "__main__":
    main()
