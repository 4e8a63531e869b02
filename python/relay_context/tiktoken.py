"""``relay_context.tiktoken``: a drop-in for ``tiktoken`` (``import relay_context.tiktoken as
tiktoken``), whose implementation lives in :mod:`relay_context.core.tiktoken_compat` (see there)."""

from relay_context.core.tiktoken_compat import *  # noqa: F403 - this module is that one's public name
from relay_context.core.tiktoken_compat import __all__ as __all__
