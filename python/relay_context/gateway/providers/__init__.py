"""Provider wire formats, each beside the neutral schema: ``openai`` and ``anthropic``."""
