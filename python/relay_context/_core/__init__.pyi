# Stubs of the compiled extension relay_context._core (built from cpp/module.cpp).
from . import compress as compress
from . import drift as drift
from . import fuzzy as fuzzy
from . import knapsack as knapsack
from . import ratelimit as ratelimit
from . import rows as rows
from . import tokenizer as tokenizer
