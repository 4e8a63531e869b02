"""``relay_context.security.rate_limiter``: the documented home of the rate limiters, whose
facade over the C++ kernel lives in :mod:`relay_context.core.ratelimit` (see there)."""

from relay_context.core.ratelimit import *  # noqa: F403 - this module is that one's public name
from relay_context.core.ratelimit import __all__ as __all__
