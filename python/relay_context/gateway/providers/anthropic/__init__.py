"""Anthropic's wire format (Messages): requests, responses and stream events to and from the
neutral schema, and the upstream's endpoints."""
