"""Agent-framework integrations of the handoff relay, all on its client SDK
(:mod:`relay_context.handoff_client`), never on server code: the MCP server
(:mod:`.mcp_server`, ``relay mcp``) and LangChain tools (:mod:`.langchain`). Each needs its
framework installed (``relay-context[mcp]``, ``relay-context[langchain]``)."""
