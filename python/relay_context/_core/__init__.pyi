# Stubs of the compiled extension relay_context._core (built from cpp/module.cpp).
from . import fuzzy as fuzzy
from . import tokenizer as tokenizer
