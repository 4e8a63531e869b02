"""A deterministic generator of realistic chat messages, for compression tests and benchmarks.

Messages are JSON objects as an LLM gateway stores them: a role, content built from the phrases
people and assistants repeat (greetings, hedges, step lists, error reports, code, tool calls) mixed
with varied specifics (names, numbers, ids, paths, dates, URLs, non-English snippets), plus
metadata (ids, timestamps, model, token usage). Most are well under 1 KB, like real chat turns.
"""

from __future__ import annotations

import json
import random

ROLES_WEIGHTS = (("user", 40), ("assistant", 40), ("system", 5), ("tool", 15))

USER_OPENERS = (
    "Hi! ",
    "Hey, ",
    "Quick question: ",
    "Thanks for the help earlier. ",
    "",
    "",
    "Can you help me with something? ",
    "I have another issue. ",
)
USER_ASKS = (
    "How do I {verb} {thing} in {tech}?",
    "Why does {thing} fail with `{error}` when I {verb} it?",
    "Can you write a {tech} function that {verb}s {thing}?",
    "What's the difference between {thing} and {thing2}?",
    "Please summarize this: {sentence}",
    "My {thing} stopped working after the {tech} upgrade to {version}. Any ideas?",
    'Translate to {language}: "{sentence}"',
    "Is it safe to {verb} {thing} on a production {tech} cluster?",
    "Order {order_id} still hasn't arrived, it was due on {date}.",
)
ASSISTANT_OPENERS = (
    "Sure! ",
    "Great question. ",
    "Certainly. ",
    "Here's how you can do that. ",
    "I'd be happy to help. ",
    "Good catch. ",
    "",
)
ASSISTANT_BODIES = (
    "To {verb} {thing} in {tech}, follow these steps:\n1. Open the configuration file at "
    "`{path}`.\n2. Set `{key}` to `{value}`.\n3. Restart the service and check the logs.",
    "The error `{error}` usually means that {thing} is not initialized before you {verb} it. "
    "Make sure you call `{func}()` first.",
    "Here is an example:\n```{lang}\n{code}\n```\nThis {verb}s {thing} and returns the result.",
    "In short: {thing} is used to {verb} data, while {thing2} is designed for {purpose}. "
    "If you need {purpose}, prefer {thing2}.",
    "I checked order {order_id}: it shipped on {date} and should arrive within {n} business "
    "days. You can track it at {url}.",
    "Summary: {sentence} The main action items are to {verb} {thing} and review {thing2}.",
    "I'm not able to access {thing} directly, but you can {verb} it with `{tech} {cmd}`.",
)
ASSISTANT_CLOSERS = (
    " Let me know if you have any other questions!",
    " Hope this helps!",
    " Is there anything else I can help you with?",
    "",
    "",
)
SYSTEM_PROMPTS = (
    "You are a helpful assistant. Answer concisely and cite sources when possible.",
    "You are a customer support agent for Acme Corp. Be polite and never share internal data.",
    "You are an expert {tech} engineer. Explain trade-offs and give runnable examples.",
)
VERBS = ("configure", "deploy", "parse", "cache", "validate", "serialize", "migrate", "debug")
THINGS = (
    "the API client",
    "a JSON payload",
    "the database index",
    "the auth token",
    "a webhook",
    "the Docker image",
    "the rate limiter",
    "a CSV export",
    "the session store",
    "the cron job",
)
TECHS = ("Python", "Kubernetes", "PostgreSQL", "React", "Redis", "Terraform", "Go", "FastAPI")
ERRORS = (
    "KeyError: 'user_id'",
    "ConnectionRefusedError: [Errno 111]",
    "TypeError: undefined is not a function",
    "permission denied",
    "OOMKilled",
    "timeout after 30s",
    "404 Not Found",
)
LANGUAGES = ("French", "Spanish", "German", "Japanese", "Portuguese")
SENTENCES = (
    "The quarterly revenue grew by {n}% while costs stayed flat.",
    "We agreed to ship the new onboarding flow before {date}.",
    "Der Bericht ist fertig und wurde an das Team geschickt.",
    "La réunion est reportée à jeudi prochain à {n}h.",
    "顧客からのフィードバックをまとめてください。",
    "The meeting notes mention {name} will own the migration.",
)
NAMES = ("Alice", "Bob", "Priya", "Chen", "María", "Olu", "Sven", "Fatima", "Kenji", "Lena")
PURPOSES = ("streaming", "batch jobs", "low latency reads", "analytics", "background tasks")
CODE = (
    "def {func}(items):\n    return [x for x in items if x.get('{key}')]",
    "const {func} = async (id) => {{\n  const res = await fetch(`/api/{key}/${{id}}`);\n"
    "  return res.json();\n}};",
    "SELECT id, {key} FROM orders WHERE created_at > '{date}' ORDER BY id LIMIT {n};",
    "kubectl rollout restart deployment/{key} -n production",
)
TOOLS = ("get_weather", "search_orders", "lookup_user", "run_sql", "send_email")
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "gpt-4.1")
# Everyday words for free-form sentences, so that content is not only templates.
_WORDS_TEXT = (
    "the a an and or but if then because so we you they it this that these those is are was "
    "were be been have has had do does did can could should would will may might must not no "
    "yes all some any each every more most less few many much other another such same new old "
    "good bad great small large long short first last next early late fast slow easy hard "
    "data file user team project report issue bug fix change update release version test "
    "build server client request response error log message query table field value result "
    "customer order price invoice account payment shipping address email phone week month "
    "today tomorrow yesterday morning evening meeting call plan idea question answer reason "
    "problem solution example step time work help need want think know see make get use try "
    "run check send read write open close start stop move keep give take find show tell ask "
    "seems looks feels works breaks fails passes returns expects allows prevents requires "
    "maybe probably actually really just also still already again almost quite very too "
    "about after before during under over between through without within across around"
)
WORDS = tuple(_WORDS_TEXT.split())


def _fill(rng: random.Random, template: str) -> str:
    values = {
        "verb": rng.choice(VERBS),
        "thing": rng.choice(THINGS),
        "thing2": rng.choice(THINGS),
        "tech": rng.choice(TECHS),
        "error": rng.choice(ERRORS),
        "version": f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
        "language": rng.choice(LANGUAGES),
        "order_id": f"#{rng.randint(100000, 999999)}",
        "date": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "path": rng.choice(("/etc/app/config.yaml", "~/.config/relay.toml", "./settings.py")),
        "key": rng.choice(("timeout", "max_retries", "user_id", "region", "batch_size")),
        "value": str(rng.choice((30, 5, "eu-west-1", True, 512))),
        "func": rng.choice(("load_config", "fetchUser", "normalize", "retry_with_backoff")),
        "lang": rng.choice(("python", "javascript", "sql", "bash")),
        "purpose": rng.choice(PURPOSES),
        "url": f"https://track.example.com/{rng.randint(10**8, 10**9)}",
        "cmd": rng.choice(("get pods", "logs -f", "describe", "apply -f deploy.yaml")),
        "n": str(rng.randint(2, 48)),
        "name": rng.choice(NAMES),
    }
    values["code"] = rng.choice(CODE).format(**values)
    values["sentence"] = rng.choice(SENTENCES).format(**values)
    return template.format(**values)


def _free_text(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(1, 4)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(6, 22))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(2, 99999)))
        sentences.append(" ".join(words).capitalize() + rng.choice(".?!."))
    return " ".join(sentences)


def _content(rng: random.Random, role: str) -> str | None:
    text = _content_from_templates(rng, role)
    if text is not None and role in ("user", "assistant") and rng.random() < 0.5:
        text += " " + _free_text(rng)
    return text


def _content_from_templates(rng: random.Random, role: str) -> str | None:
    if role == "user":
        return rng.choice(USER_OPENERS) + _fill(rng, rng.choice(USER_ASKS))
    if role == "assistant":
        if rng.random() < 0.15:
            return None  # a tool call instead of text
        body = _fill(rng, rng.choice(ASSISTANT_BODIES))
        return rng.choice(ASSISTANT_OPENERS) + body + rng.choice(ASSISTANT_CLOSERS)
    if role == "system":
        return _fill(rng, rng.choice(SYSTEM_PROMPTS))
    result = {
        "status": rng.choice(("ok", "ok", "error")),
        "order_id": rng.randint(100000, 999999),
        "temperature_c": round(rng.uniform(-5, 35), 1),
        "user": rng.choice(NAMES),
    }
    return json.dumps(result)


def chat_message(rng: random.Random, index: int) -> str:
    """One chat message as a compact JSON line (usually 150-1000 bytes)."""
    roles, weights = zip(*ROLES_WEIGHTS, strict=True)
    role = rng.choices(roles, weights)[0]
    message: dict[str, object] = {
        "id": f"msg_{rng.getrandbits(64):016x}",
        "session_id": f"sess-{rng.randint(1, 500):04d}",
        "role": role,
        "content": _content(rng, role),
        "created_at": 1_700_000_000 + index * 37 + rng.randint(0, 30),
    }
    if role == "assistant":
        message["model"] = rng.choice(MODELS)
        message["usage"] = {
            "prompt_tokens": rng.randint(20, 4000),
            "completion_tokens": rng.randint(5, 800),
        }
        if message["content"] is None:
            message["tool_calls"] = [
                {
                    "id": f"call_{rng.getrandbits(48):012x}",
                    "type": "function",
                    "function": {
                        "name": rng.choice(TOOLS),
                        "arguments": json.dumps({"query": _fill(rng, "{thing} {order_id}")}),
                    },
                }
            ]
    if role == "tool":
        message["tool_call_id"] = f"call_{rng.getrandbits(48):012x}"
    return json.dumps(message, ensure_ascii=False)


def chat_messages(count: int, seed: int = 0) -> list[str]:
    """``count`` messages; the same seed gives the same messages."""
    rng = random.Random(seed)
    return [chat_message(rng, i) for i in range(count)]


def conversation_text(n_bytes: int, seed: int = 1) -> str:
    """A long transcript (one JSON message per line) of about ``n_bytes`` UTF-8 bytes."""
    rng = random.Random(seed)
    lines: list[str] = []
    size = 0
    i = 0
    while size < n_bytes:
        line = chat_message(rng, i)
        lines.append(line)
        size += len(line.encode()) + 1
        i += 1
    return "\n".join(lines)
