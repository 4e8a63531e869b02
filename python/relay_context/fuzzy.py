"""``relay_context.fuzzy``: the documented home of the fuzzy scorers and the near-duplicate
index, whose facade lives in :mod:`relay_context.core.fuzzy` (see there)."""

from relay_context.core.fuzzy import *  # noqa: F403 - this module is that one's public name
from relay_context.core.fuzzy import __all__ as __all__
