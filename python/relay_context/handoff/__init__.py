"""The handoff relay (server side): payloads pushed, pulled and peeked by URL pointer, channels,
end-to-end encrypted payloads whose key stays in the URL fragment.

It stands on ``core`` (compression, content hashing), ``security`` and ``persistence``, never on
``service`` or the other products; its client SDK is a separate package that imports no server
code. The import contracts in ``pyproject.toml`` hold both there. See ``docs/architecture.md``.
"""
