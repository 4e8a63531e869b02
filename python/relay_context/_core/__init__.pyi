# Stubs of the compiled extension relay_context._core (built from cpp/module.cpp).
from . import knapsack as knapsack
from . import tokenizer as tokenizer
