"""`dtype = "auto"` picks the weights' dtype from the CPU's own flags (hardware.py)."""
import pytest

from uniner_spacy.backends.hf.hardware import auto_dtype, cpu_flags, native_bf16, speed_flags


@pytest.mark.parametrize("device,flags,dtype", [
    ("cpu", {"sse4_2", "avx2", "fma"}, "float32"),            # AVX2 only: bf16 is emulated, ~50× slower
    ("cpu", {"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),  # native bf16 dot products
    ("cpu", {"avx2", "amx_bf16", "amx_tile"}, "bfloat16"),     # AMX
    ("cpu", set(), "float32"),                                 # no /proc/cpuinfo (macOS, Windows)
    ("cuda", set(), "bfloat16"),
    ("cuda:1", {"avx2"}, "bfloat16"),
])
def test_auto_dtype_follows_the_flags(device, flags, dtype):
    assert auto_dtype(device, frozenset(flags)) == dtype


def test_speed_flags_keep_what_decides_speed():
    flags = frozenset({"avx2", "avx512_bf16", "amx_tile", "fma", "sse4_2", "ht"})
    assert speed_flags(flags) == ["amx_tile", "avx2", "avx512_bf16", "fma"]
    assert set(speed_flags()) <= cpu_flags()


def test_backend_resolves_auto_for_this_machine_and_keys_the_cache_by_it():
    from uniner_spacy.backends.hf.backend import HFBackend

    expected = "bfloat16" if native_bf16() else "float32"
    auto = HFBackend(device="cpu")
    assert auto.dtype == expected  # nothing loaded to know it
    assert f"dtype={expected};" in auto.model_id
    # answers of the same weights in the same dtype share cache entries, however the dtype was asked for
    assert HFBackend(device="cpu", dtype=expected).model_id == auto.model_id
    other = "float32" if expected == "bfloat16" else "bfloat16"
    assert HFBackend(device="cpu", dtype=other).model_id != auto.model_id


def test_auto_loads_the_chosen_dtype(tiny_model_dir):
    import torch

    from uniner_spacy.backends.hf.backend import HFBackend

    backend = HFBackend(str(tiny_model_dir), device="cpu")
    assert next(backend.model.parameters()).dtype == getattr(torch, auto_dtype("cpu"))
    wrapped = HFBackend.from_objects(backend.model, backend.tokenizer)
    assert wrapped.dtype == auto_dtype("cpu")  # the dtype of the weights given, not a guess
