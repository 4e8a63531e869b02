"""OpenAI's wire format (Chat Completions): requests, responses and stream chunks to and from
the neutral schema, and the upstream's endpoints."""
