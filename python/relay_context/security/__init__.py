"""Relay's security building blocks: authentication (``auth``: JWT, API keys, roles), API-key
storage (``api_keys``) and rate limiting (``rate_limiter``)."""
