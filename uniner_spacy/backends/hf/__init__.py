"""`uniner.HF.v1`: Hugging Face causal LMs, with the answer grammar, decoding loop and CPU kernels."""
from .backend import HFBackend

__all__ = ["HFBackend"]
