"""Who answers: every backend takes a batch of `Query` and returns `Generation`s."""
from .base import Prompter, approx_token_offsets

__all__ = ["Prompter", "approx_token_offsets"]
