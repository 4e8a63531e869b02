"""Agent-framework integrations of the handoff relay, all on its client SDK
(:mod:`relay_context.handoff_client`), never on server code: the MCP server
(:mod:`.mcp_server`, ``relay mcp`` and ``/mcp`` in the service), LangChain tools
(:mod:`.langchain`), CrewAI tools (:mod:`.crewai`) and AutoGen tools (:mod:`.autogen`). Each
needs its framework installed (``relay-context[mcp]``, ``[langchain]``, ``[crewai]``,
``[autogen]``)."""
