# Stubs of the compiled extension relay_context._core (built from cpp/module.cpp).
from . import compress as compress
from . import tokenizer as tokenizer
