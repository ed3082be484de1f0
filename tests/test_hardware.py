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


def test_kept_memory_is_reused_without_new_page_faults():
    """After `keep_freed_memory`, a forward's worth of large blocks allocated and freed again and
    again comes from the same pages (glibc's defaults mapped each afresh: 0.5–1.2 million faults
    in a 100-sentence run). In a fresh process: the setting is process-wide, and other tests' threads
    (servers, tokenizers) would fault pages of their own in this one."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's malloc only")
    code = """
import resource, torch
from uniner_spacy.backends.hf.hardware import keep_freed_memory
assert keep_freed_memory()
sizes = [(1 << 20) * k for k in (3, 9, 5, 17, 2)]  # 3-17 MB blocks, between the old and new thresholds
def churn():
    for n in sizes:
        torch.empty(n, dtype=torch.uint8).fill_(1)
churn()  # the heap grows; about one process in ten still grows it by 5 MB in the next round
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) < 1000  # 20 × 36 MB of fresh pages would be ~180,000


def test_keep_freed_memory_does_nothing_without_glibc(monkeypatch):
    import platform

    from uniner_spacy.backends.hf import hardware

    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert hardware.keep_freed_memory() is False


def test_backend_keeps_memory_only_when_asked(tiny_model_dir):
    """Process-wide and worth a few percent, so it is off by default."""
    import platform

    from uniner_spacy.backends.hf.backend import HFBackend

    default = HFBackend(str(tiny_model_dir), device="cpu")
    default.model  # noqa: B018 -- loads
    assert default.memory_kept is False
    on = HFBackend(str(tiny_model_dir), device="cpu", keep_memory=True)
    on.model  # noqa: B018
    assert on.memory_kept is (platform.libc_ver()[0] == "glibc")


def test_settings_benchmark_compares_process_wide_settings_only_across_processes():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "settings.py"
    run = subprocess.run([sys.executable, str(script), "--settings", '[{"keep_memory": false}, {}]'],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "keep_memory act on the whole process: compare them with --processes" in run.stderr
