"""The context engine in Python: keep a conversation, get the window to send.

Run: ``python examples/context_engine.py``

``ContextEngine`` stores sessions of messages (SQLite here, in a temporary folder that is removed
at the end) and answers "which messages do I send with the next request, within this many
tokens?" under three policies: ``knapsack``, ``recent`` and ``summarize``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

from relay_context import ContextEngine, ContextWindow, MessageRole, TokenCounter
from relay_context.config.settings import Settings

SESSION = "trip-planning"
BUDGET = 160  # tokens: small on purpose, so that each policy has to leave something out

# (role, content) in conversation order; the tool exchange is added separately below.
TURNS = [
    (MessageRole.SYSTEM, "You are a travel assistant. Answer briefly and cite prices in euros."),
    (MessageRole.USER, "I want to visit Lisbon for four days in May with a budget of 900 euros."),
    (
        MessageRole.ASSISTANT,
        "Lisbon in May is mild and busy. Flights from most European cities cost 80 to 200 "
        "euros; central hotels run 90 to 150 euros a night. Shall I look at the weather?",
    ),
    (MessageRole.USER, "Yes please, and tell me which days look dry."),
]
LATER_TURNS = [
    (
        MessageRole.ASSISTANT,
        "Tuesday and Wednesday look dry and warm, Thursday may bring showers. I would plan "
        "Sintra for Tuesday and keep the museums for Thursday.",
    ),
    (MessageRole.USER, "What about food? I like seafood and I do not want tourist traps."),
    (
        MessageRole.ASSISTANT,
        "Try the tascas of Alfama and Mouraria for grilled sardines, and Cervejaria Ramiro "
        "for shellfish; book ahead. Time Out Market is convenient but crowded.",
    ),
    (MessageRole.USER, "Great. Can you draft a day-by-day plan that stays under 900 euros?"),
]


async def build_conversation(engine: ContextEngine) -> None:
    for role, content in TURNS:
        await engine.add_message(SESSION, role, content)
    # A tool exchange: the assistant asks for a function call, the tool answers it. The engine
    # treats the call and its result as one unit (kept or dropped together), because a
    # provider rejects a tool result whose call is missing.
    await engine.add_message(
        SESSION,
        MessageRole.ASSISTANT,
        "Let me check the forecast.",
        tool_calls=[
            {
                "id": "call_weather_1",
                "type": "function",
                "function": {"name": "get_forecast", "arguments": '{"city": "Lisbon"}'},
            }
        ],
    )
    forecast = {"Tue": "sunny 24C", "Wed": "sunny 25C", "Thu": "showers 19C", "Fri": "cloudy 21C"}
    await engine.add_message(
        SESSION, MessageRole.TOOL, json.dumps(forecast), tool_call_id="call_weather_1"
    )
    for role, content in LATER_TURNS:
        # metadata["importance"] scales a message's value for the knapsack policy: the food
        # question matters to this user, so it should survive longer than its age suggests.
        importance = 3.0 if "seafood" in content else 1.0
        await engine.add_message(SESSION, role, content, metadata={"importance": importance})


def show(window: ContextWindow) -> None:
    kept = ", ".join(str(m.seq) if m.seq is not None else "summary" for m in window.messages)
    print(
        f"{window.policy:<9} {window.tokens_used:>3} / {window.budget} tokens, "
        f"kept [{kept}], dropped {list(window.dropped_seqs)}"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="relay-example-") as tmp:
        # Everything the engine persists goes into this folder; database_url is given explicitly
        # so that a DATABASE_URL in the environment cannot redirect the example elsewhere.
        settings = Settings(data_dir=Path(tmp), database_url=f"sqlite:///{tmp}/relay.db")
        async with ContextEngine(settings) as engine:  # opens the store, closes it at the end
            await build_conversation(engine)

            windows = {}
            for policy in ("knapsack", "recent", "summarize"):
                windows[policy] = await engine.get_context(SESSION, budget=BUDGET, policy=policy)
                show(windows[policy])

            # The budget guarantee: what the window bills, counted with the OpenAI rule, equals
            # tokens_used and never exceeds the budget.
            counter = TokenCounter.for_model(settings.default_model)
            for window in windows.values():
                assert counter.count_messages(window.to_openai()) == window.tokens_used <= BUDGET

            summary = windows["summarize"].messages[1]
            if summary.summarizes:
                print(f"summary of seqs {list(summary.summarizes)}: {summary.content[:70]!r}...")

            # The same window in each provider's request shape.
            openai_messages = windows["knapsack"].to_openai()
            anthropic_request = windows["knapsack"].to_anthropic()
            print(f"to_openai(): {len(openai_messages)} messages, roles ", end="")
            print([m["role"] for m in openai_messages])
            print(
                f"to_anthropic(): system {anthropic_request['system'][:40]!r}..., "
                f"{len(anthropic_request['messages'])} turns"
            )

            stats = await engine.stats(SESSION)
            print(
                f"stats: {stats.message_count} messages, {stats.total_tokens} tokens in all, "
                f"by role {stats.tokens_by_role}"
            )


if __name__ == "__main__":
    asyncio.run(main())
