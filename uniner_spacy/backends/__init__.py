"""Who answers: every backend takes a batch of `Query` and returns `Generation`s (the `Backend` protocol)."""
from .base import Backend, Prompter, approx_token_offsets

__all__ = ["Backend", "Prompter", "approx_token_offsets"]
