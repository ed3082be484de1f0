"""`uniner.HF.v1`: any Hugging Face causal LM, local folder or GGUF file.

All (chunk, type) queries of an `nlp.pipe` batch are generated together:
with `prefix_sharing` (the default) each batch's common opening, each
passage and each question's own words are encoded once, level by level, and
all questions decode together; without it prompts are length-sorted and
left-padded. Decoding is greedy and drops rows whose list has closed
(`decoding.py`). On the CPU, attention and the key/value cache take the
faster route of `cpu_kernels.py`, where passages are stored once for all their
questions. One query per call (`batch_size=1`) is the slow baseline.

Passages are document text: a special-token string in one (`<|im_end|>`) is
tokenized as text, never as a control token (`base.PromptEncoder`). An answer
cut at `max_new_tokens` says so (`Generation.finish_reason == "length"`).
"""
from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple, Union

from ...errors import ConfigError, TrustError
from ...questions.parsing import forced_mentions, scan_list
from ...questions.prompts import LAYOUTS, adapter_layout
from ...registry import registry
from ...trust import check_tree, contained, copy_tree, read_inside
from ...types import Generation, Query
from ...weights import BOS_MODEL_TYPES, EMBEDDED_MODELS, embedded_model, file_digest, fix_tokenizer, resolve_model
from ..base import PromptEncoder, Prompter, Spans, clip, common_head, describe
from .cpu_kernels import (
    PassageSlab,
    fast_path,
    fuse_layers,
    growing_cache,
    shared_prefix_cache,
    use_grouped_attention,
)
from .decoding import Step, greedy_decode
from .drafting import PassageDrafter
from .grammar import GRAMMAR_VERSION
from .hardware import NATIVE_BF16, auto_dtype, keep_freed_memory, speed_flags

if TYPE_CHECKING:
    from .grammar import Vocabulary

logger = logging.getLogger(__name__)
Words = Tuple[Tuple[int, int], ...]  # a passage's token offsets (`Query.words`)
# int8: dynamic int8 quantization of the linear layers, on the CPU
DTYPES = ("auto", "float32", "bfloat16", "float16", "int8")
# auto: `grouped` on the CPU (cpu_kernels.py), the model's own kernel elsewhere
ATTENTIONS = ("auto", "grouped", "model")
# part of cache keys: the answer text changes with how tokens are decoded (2: spaces before punctuation kept)
ANSWER_TEXT_VERSION = 2
# `from_pretrained` patches torch process-wide while it builds a model, so two threads loading at
# once (a server's first requests) can leave later models on the meta device: one load at a time
_LOADING = threading.Lock()


@registry.misc("uniner.HF.v1")
class HFBackend:
    def __init__(
        self,
        model: str = "embedded",
        *,
        adapter: Optional[str] = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: Optional[int] = None,
        max_new_tokens: int = 256,
        threads: Optional[int] = None,
        stop_at_list_end: bool = True,
        prefix_sharing: bool = True,
        constrained: Optional[bool] = None,
        system: str = "text",
        dataset: Optional[str] = None,
        attention: str = "auto",
        draft_tokens: int = 4,
        fused: bool = True,
        keep_memory: bool = False,
        layout: str = "auto",
    ):
        if attention not in ATTENTIONS:
            raise ConfigError(f"attention must be one of {ATTENTIONS}, not {attention!r}")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"batch_size must be ≥ 1, got {batch_size}")
        if dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {DTYPES}, not {dtype!r}")
        if max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be ≥ 1, got {max_new_tokens}")
        if layout not in ("auto",) + LAYOUTS:
            raise ConfigError(f"layout must be 'auto' or one of {LAYOUTS}, not {layout!r}")
        if draft_tokens < 0:
            raise ConfigError(f"draft_tokens must be ≥ 0 (0: no drafts), got {draft_tokens}")
        self.name = model
        self.adapter = adapter
        self.layout_name = layout
        self.device_name = device
        self.dtype_name = dtype
        # None: set at load, 512 queries where passages are stored once (CPU), else 32
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.threads = threads
        self.stop_at_list_end = stop_at_list_end
        self.prefix_sharing = prefix_sharing
        self.attention = attention
        # speculative decoding under the grammar: drafts from the passage, verified (drafting.py)
        self.draft_tokens = draft_tokens
        # on the CPU route: q/k/v, gate/up and each norm as one kernel (cpu_kernels.fuse_layers)
        self.fused = fused
        # process-wide, so off unless asked (hardware.keep_freed_memory: freed activations stay for reuse)
        self.keep_memory = keep_memory
        self.memory_kept = False  # set at load: whether this process's malloc now keeps freed memory
        self._grouped = False  # set at load: grouped attention and the shared-prefix cache in use
        # None: on for the embedded students and their bases (`embedded-base` with an adapter is how a
        # student in training is measured; it answers in this format), off otherwise
        self.constrained = (embedded_model(model) is not None) if constrained is None else constrained
        self._vocab: Optional[Vocabulary] = None  # the grammar's view of the tokenizer, built once
        self._encoder: Optional[PromptEncoder] = None  # built at first use, from the tokenizer
        # auto: the layout the adapter (or model folder) records (prompts.LAYOUT_FILE), else UniNER's
        self.prompter = Prompter(system=system, dataset=dataset, layout=self._layout())
        self._model = None
        self._tokenizer = None
        self._model_id: Optional[str] = None  # fixed at first use: the files may change later

    def _layout(self) -> str:
        if self.layout_name != "auto":
            return self.layout_name
        if self.adapter:
            return adapter_layout(self.adapter)
        found = embedded_model(self.name)
        if found is not None:  # the shipped adapter's layout, else the one that student is trained in
            spec, with_adapter = found
            has_own = with_adapter and (spec.adapter / "adapter_config.json").exists()
            return adapter_layout(spec.adapter) if has_own else spec.layout
        return adapter_layout(self.name) if Path(self.name).is_dir() else "uniner"

    @classmethod
    def from_objects(cls, model, tokenizer, **kwargs) -> "HFBackend":
        """Wrap a model already in memory (benchmarks, notebooks); nothing is loaded."""
        backend = cls(getattr(model, "name_or_path", "in-memory"), **kwargs)
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        fix_tokenizer(tokenizer, None, bos=model_type in BOS_MODEL_TYPES)
        backend._model, backend._tokenizer = model, tokenizer
        param = next(model.parameters())
        backend.device, backend.dtype_name = str(param.device), str(param.dtype).removeprefix("torch.")
        backend.batch_size = backend.batch_size or 32
        backend.template = backend.prompter.template(tokenizer.eos_token)
        return backend

    # -- loading ---------------------------------------------------------
    def _load(self) -> None:
        if self._model is not None:
            return
        with _LOADING:
            if self._model is None:
                self._load_now()

    def _load_now(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self.threads:
            torch.set_num_threads(self.threads)
        path, _ = resolve_model(self.name)
        self.model_id  # noqa: B018 -- pinned to the weights loaded now
        device = self._device()
        if self.keep_memory:
            self.memory_kept = keep_freed_memory()
            logger.info("malloc keeps freed memory for reuse: %s", self.memory_kept)
        if self.dtype_name == "auto":
            flags = [f for f in speed_flags() if f in NATIVE_BF16]
            logger.info("dtype auto: %s on %s (native bf16 flags: %s)", self.dtype, device, ", ".join(flags) or "none")
        dtypes = {
            "float32": torch.float32,
            "bfloat16": torch.bfloat16,
            "float16": torch.float16,
            "int8": torch.float32,  # float32 weights, then dynamic int8 linear layers (CPU only)
        }
        if self.dtype_name == "int8" and device != "cpu":
            raise ConfigError("dtype 'int8' (dynamic quantization) runs on the CPU only")
        dtype = dtypes[self.dtype]
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype)
        fix_tokenizer(tokenizer, None, bos=getattr(model.config, "model_type", None) in BOS_MODEL_TYPES)
        if self.adapter:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, self.adapter).merge_and_unload()
        model.to(device).eval()
        if self.dtype_name == "int8":
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            # per output channel, decoder layers only (lm_head is tied to the embeddings); it still
            # cost F1 on this model (benchmarks/README.md), so it is an option, not the CPU default
            model.model = quantize_dynamic(model.model, {torch.nn.Linear: per_channel_dynamic_qconfig},
                                           dtype=torch.qint8)
        if self.attention == "grouped" or (self.attention == "auto" and device == "cpu"):
            # the shared-prefix cache goes with the grouped attention: one switch for the CPU route
            self._grouped = use_grouped_attention(model)  # False off the fast path
            if self._grouped and self.fused and self.dtype_name != "int8":  # int8 layers hold no weights
                fuse_layers(model)  # last: it makes the weights views of fused ones
        if self.batch_size is None:
            # a batch's cost is mostly its slowest answer's steps, so on the CPU more rows per batch
            # pay off; elsewhere each row carries its whole prompt's key/value cache
            self.batch_size = 512 if self._grouped and self.prefix_sharing else 32
        self.device = device
        self.template = self.prompter.template(tokenizer.eos_token)
        self._tokenizer, self._model = tokenizer, model  # the model last: it says the load is done

    def _device(self) -> str:
        if self.device_name != "auto":
            return self.device_name
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def dtype(self) -> str:
        """The weights' dtype, with `auto` chosen for this machine (hardware.auto_dtype)."""
        return auto_dtype(self._device()) if self.dtype_name == "auto" else self.dtype_name

    @property
    def tokenizer(self):
        self._load()
        return self._tokenizer

    @property
    def capacity(self) -> Optional[int]:
        """Rows of one generation batch (512 on the CPU's shared-prefix path, 32 elsewhere), set at load."""
        self._load()
        return self.batch_size

    @property
    def model(self):
        self._load()
        return self._model

    @property
    def encoder(self) -> PromptEncoder:
        if self._encoder is None or self._encoder.tokenizer is not self.tokenizer:
            self._encoder = PromptEncoder(self.tokenizer)
        return self._encoder

    @property
    def model_id(self) -> str:
        """Identifies the weights and decoding settings (part of cache keys)."""
        if self._model_id is None:
            self._model_id = self._identify()
        return self._model_id

    def _identify(self) -> str:
        p = Path(self.name)
        found = embedded_model(self.name)
        if found is not None and found[1]:  # the shipped student changes with each release
            p = found[0].adapter / "adapter_model.safetensors"
        ident = f"{self.name}@{file_digest(p)}" if p.exists() else self.name
        if self.adapter:
            ident += f"+{file_digest(self.adapter)}"
        return ident + "|" + describe(
            {"max_new_tokens": self.max_new_tokens, "dtype": self.dtype,
             "stop": self.stop_at_list_end, **self.prompter.describe(),
             "constrained": GRAMMAR_VERSION if self.constrained else False, "answer_text": ANSWER_TEXT_VERSION}
        )

    # -- serialisation (a saved pipeline carries a user adapter; the shipped one is named) --------
    # The copy takes the adapter folder's regular files only, and a link in it only where it points
    # inside the folder (or below an allowed root): a link to a secret file must not travel in the copy.
    # On load, `backend.json` may name its adapter only inside the saved folder (docs/security.md).
    def to_disk(self, path: Union[str, Path]) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        if self.adapter:
            src, dst = Path(self.adapter), path / "adapter"
            if not (src / "adapter_config.json").is_file():
                raise TrustError(f"adapter {src} has no adapter_config.json: it is not an adapter folder, and "
                                 "is not copied into the saved pipeline")
            if not (dst.exists() and dst.resolve() == src.resolve()):  # saved over the folder it came from
                copy_tree(src, dst, f"adapter {src}")
        (path / "backend.json").write_text(json.dumps({
            "model": self.name, "adapter": "adapter" if self.adapter else None,
            "embedded_adapter": self.name in EMBEDDED_MODELS and not self.adapter}))

    def from_disk(self, path: Union[str, Path]) -> "HFBackend":
        folder = Path(path)
        try:
            info = json.loads(read_inside(folder, "backend.json", f"saved backend in {folder}"))
        except json.JSONDecodeError as err:
            raise TrustError(f"{folder / 'backend.json'} is not valid JSON ({err})") from None
        if not isinstance(info, dict):
            raise TrustError(f"{folder / 'backend.json'} is not a JSON object")
        if info.get("adapter"):
            what = f"the adapter that {folder / 'backend.json'} names"
            adapter = contained(folder, str(info["adapter"]), what)
            check_tree(adapter, what)
            self.adapter = str(adapter)
            self._model = self._tokenizer = self._model_id = None  # (re)load with the saved adapter
            self.prompter.layout = self._layout()
        return self

    def token_offsets(self, text: str) -> List[Tuple[int, int]]:
        # special-token strings split, as passages are tokenized in prompts
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, split_special_tokens=True)
        return [tuple(o) for o in enc["offset_mapping"]]

    # -- generation ------------------------------------------------------
    def prompts(self, queries: Sequence[Query]) -> List[str]:
        self._load()
        return [self.template.render(q.passage, q.entity_type, q.label_set) for q in queries]

    def __call__(self, queries: Sequence[Query], *, mark_forced: bool = False) -> List[Generation]:
        """One answer per query; `mark_forced` marks the mentions the grammar forced (it costs a full
        output layer per decoded token, so only the component's `drop_forced` asks for it)."""
        if self.prefix_sharing:
            return self.call_shared(queries, mark_forced=mark_forced)
        prompts = self.prompts(queries)
        assert self.batch_size is not None  # set by the load in prompts()
        texts = [[self.template.passage_span(q.passage, q.label_set)] for q in queries]
        # character length orders prompts as well as token length, without tokenising twice
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
        out: List[Optional[Generation]] = [None] * len(prompts)
        for b in range(0, len(order), self.batch_size):
            idx = order[b : b + self.batch_size]
            passages = [queries[i].passage for i in idx]
            words = [queries[i].words for i in idx]
            for i, gen in zip(idx, self.generate([prompts[i] for i in idx], passages, words,
                                                   mark_forced=mark_forced, texts=[texts[i] for i in idx])):
                out[i] = gen
        return out  # type: ignore[return-value]

    def call_shared(self, queries: Sequence[Query], *, mark_forced: bool = False) -> List[Generation]:
        """Prefix sharing: each passage is encoded once for all its questions.

        The prompt is system text, passage, question, in that order, so the
        key/value cache is built in three levels: the opening every prompt
        shares (once per batch), each passage (once), then each question's
        own words, after which all questions decode together.
        """
        self._load()
        assert self.batch_size is not None  # set at load
        by_passage: dict = {}  # (passage, label set shown) -> its queries: one prefix each
        for i, q in enumerate(queries):
            by_passage.setdefault((q.passage, q.label_set), []).append(i)
        # passages in length order, packed whole into batches of about batch_size queries
        groups = sorted(by_passage.items(), key=lambda kv: len(kv[0][0]), reverse=True)
        out: List[Optional[Generation]] = [None] * len(queries)
        batch: List[Tuple[Tuple[str, Tuple[str, ...]], List[int]]] = []
        size = 0
        for key, idx in groups + [(("", ()), [])]:
            if batch and (not idx or size + len(idx) > self.batch_size):
                passages = [p for (p, _), _ in batch]
                label_sets = [t for (_, t), _ in batch]
                owners = [k for k, (_, ids) in enumerate(batch) for _ in ids]
                flat = [i for _, ids in batch for i in ids]
                questions = [self.template.question_turn(queries[i].entity_type) for i in flat]
                words = [queries[ids[0]].words for _, ids in batch]  # the same text gives the same tokens
                for i, gen in zip(flat, self.generate_shared(passages, owners, questions, words,
                                                                    mark_forced=mark_forced, label_sets=label_sets)):
                    out[i] = gen
                batch, size = [], 0
            if idx:
                batch.append((key, idx))
                size += len(idx)
        return out  # type: ignore[return-value]

    def _split(self, prefixes: List[str], questions: List[str], passage: Tuple[int, int]) -> Optional[Tuple[str, str]]:
        """Where to cut the prompts: (opening of all prefixes, opening of all questions).

        Each cut is kept only if the pieces tokenize exactly like the whole
        prompt (the first, whose passage lies at `passage`); None when even the
        plain prefix/question cut does not (then the batch runs unshared).
        """
        encode = self.encoder

        def same(pieces: List[str]) -> bool:
            whole = encode("".join(pieces), [passage])
            parts: List[int] = []
            start = 0
            for k, piece in enumerate(pieces):
                parts += encode(piece, clip([passage], start, start + len(piece)), add_special_tokens=k == 0)
                start += len(piece)
            return parts == whole

        prefix, question = prefixes[0], questions[0]
        for head, qhead in ((common_head(prefixes), common_head(questions)), ("", "")):
            if same([head, prefix[len(head):] + qhead, question[len(qhead):]]):
                return head, qhead
        return None

    def generate_shared(self, passages: List[str], owners: List[int], questions: List[str],
                        words: Optional[List[Words]] = None, *, mark_forced: bool = False,
                        label_sets: Optional[List[Tuple[str, ...]]] = None) -> List[Generation]:
        """`questions[k]` asks about `passages[owners[k]]`, shown with `label_sets[owners[k]]` (default none)."""
        import torch

        tok, encode = self.tokenizer, self.encoder
        shown = label_sets if label_sets is not None else [()] * len(passages)
        prefixes = [self.template.prefix(p, t) for p, t in zip(passages, shown)]
        spans = [self.template.passage_span(p, t) for p, t in zip(passages, shown)]
        cut = self._split(prefixes, questions, spans[0])
        if cut is None:
            return self.generate([prefixes[o] + q for o, q in zip(owners, questions)], [passages[o] for o in owners],
                                 None if words is None else [words[o] for o in owners], mark_forced=mark_forced,
                                 texts=[[spans[o]] for o in owners])
        head, qhead = cut
        opening = encode(head, clip(spans[:1], 0, len(head)))
        rests = [encode(p[len(head):] + qhead, clip([span], len(head), len(p)), add_special_tokens=False)
                 for p, span in zip(prefixes, spans)]
        with torch.inference_mode():
            cache, ids, mask = self._prefill_passages(opening, rests)
        index = torch.tensor(owners, device=self.device)
        extra = None
        if self._grouped:  # passages stay stored once (cpu_kernels.py)
            cache = shared_prefix_cache(cache, owners)
            extra = {"shared_prefix": cache}
        else:
            cache.batch_select_indices(index)
        tails = tok([q[len(qhead):] for q in questions], add_special_tokens=False).input_ids
        ids, mask = self._append(ids[index], mask[index], tails)
        row_words = None if words is None else [words[o] for o in owners]
        return self._decode(ids, mask, [passages[o] for o in owners], row_words, past_key_values=cache,
                            forward_kwargs=extra, mark_forced=mark_forced)

    def _prefill_passages(self, opening: List[int], rests: List[List[int]], chunk: int = 16):
        """The cache of each passage's prefix: the common opening once, then the passages.

        Passages arrive longest first, so runs of `chunk` of them have similar
        lengths: each run is padded only to its own longest and written into
        one `PassageSlab`, padded at the front (which the mask hides).
        """
        import torch
        import torch.nn.functional as F

        start = growing_cache()
        head = self._extend(start, None, None, [opening]) if opening else None  # the opening's ids and mask

        def opened(n: int) -> Tuple[object, object]:  # the opening's ids and mask, once per row
            return (None, None) if head is None else (head[0].repeat(n, 1), head[1].repeat(n, 1))

        if not fast_path():  # a plain DynamicCache (another transformers): one run
            if opening:
                start.batch_repeat_interleave(len(rests))
            return (start, *self._extend(start, *opened(len(rests)), rests))
        runs = [range(b, min(b + chunk, len(rests))) for b in range(0, len(rests), chunk)]
        width = len(opening) + max(len(r) for r in rests)
        slab = PassageSlab(len(rests), width)
        parts = []
        for run in runs:
            rows = [rests[i] for i in run]
            cache = slab.run(slice(run.start, run.stop), width - len(opening) - max(len(r) for r in rows),
                             start if opening else None)
            parts.append(self._extend(cache, *opened(len(rows)), rows))
        pad = self.tokenizer.pad_token_id
        ids = torch.cat([F.pad(p[0], (width - p[0].shape[1], 0), value=pad) for p in parts])
        mask = torch.cat([F.pad(p[1], (width - p[1].shape[1], 0), value=0) for p in parts])
        return slab.cache(), ids, mask

    def _append(self, ids, mask, rows: List[List[int]]):
        """[what is there][mid pad][row]: positions count real tokens only, so pads in the middle are harmless."""
        import torch

        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        new_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=self.device)
        new_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        if ids is None:
            return new_ids, new_mask
        return torch.cat([ids, new_ids], dim=1), torch.cat([mask, new_mask], dim=1)

    def _extend(self, cache, ids, mask, rows: List[List[int]]):
        """Runs each row's new tokens after what `cache` holds; returns the grown ids and mask."""
        width = ids.shape[1] if ids is not None else 0
        ids, mask = self._append(ids, mask, rows)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, width:]
        inputs = dict(input_ids=ids[:, width:], attention_mask=mask, position_ids=positions, past_key_values=cache,
                      use_cache=True)
        # only the cache is wanted: the decoder alone, as even one position's logits per row cost a pass
        # over the whole output layer (262k rows for Gemma)
        if hasattr(self.model, "get_decoder"):
            self.model.get_decoder()(**inputs)
        else:
            self.model(**inputs, logits_to_keep=1)
        return ids, mask

    def generate(self, prompts: Sequence[Union[str, List[int]]], passages: Optional[List[str]] = None,
                 words: Optional[List[Words]] = None, *, mark_forced: bool = False,
                 texts: Optional[Sequence[Spans]] = None) -> List[Generation]:
        """Greedy generation for one padded batch, with per-token log-probs; `passages` (and their
        token offsets, `words`) constrain the answers when `constrained`.

        A prompt is a string or its token ids; `texts` gives each string prompt's document text
        (character ranges), whose special-token strings stay text. Without it a prompt is read
        as written, control tokens included (the server's raw completions).
        """
        self._load()
        rows = [p if not isinstance(p, str) else self.encoder(p, texts[k] if texts is not None else ())
                for k, p in enumerate(prompts)]
        ids, mask = self._append(None, None, rows)
        return self._decode(ids, mask, passages, words, mark_forced=mark_forced)

    def _decode(self, input_ids, attention_mask, passages=None, words=None, past_key_values=None,
                forward_kwargs=None, mark_forced: bool = False) -> List[Generation]:
        tok = self.tokenizer
        processor = drafter = None
        if self.constrained and passages is not None:
            from .grammar import AnswerGrammar, JsonListConstraint, Vocabulary

            if self._vocab is None:
                self._vocab = Vocabulary(tok)
            keys = list(zip(passages, words or [()] * len(passages)))
            grammars = {(text, bounds): AnswerGrammar(text, words=bounds) for text, bounds in set(keys)}
            processor = JsonListConstraint(self._vocab, [grammars[key] for key in keys])
            if self.draft_tokens:
                drafter = PassageDrafter(tok, passages, self.draft_tokens)
        rows = greedy_decode(
            self.model, input_ids, attention_mask,
            eos_id=tok.eos_token_id,
            max_new_tokens=self.max_new_tokens,
            min_new_tokens=getattr(self.model.generation_config, "min_new_tokens", None) or 0,
            past_key_values=past_key_values,
            processor=processor,
            stop=ListClosed(tok) if self.stop_at_list_end else None,
            forward_kwargs=forward_kwargs,
            mark_forced=mark_forced,
            drafter=drafter,
        )
        out = []
        for row in rows:
            pieces = self._pieces(row)
            text = "".join(p for p, _ in pieces)
            forced = forced_mentions(text, pieces, [s.forced for s in row])
            out.append(Generation(text=text, token_logprobs=pieces, forced=forced,
                                  finish_reason=self._finish_reason(row)))
        return out

    def _finish_reason(self, row: Sequence[Step]) -> str:
        """"length" when decoding ran out of tokens before EOS or the list's end, else "stop"."""
        if len(row) < self.max_new_tokens:
            return "stop"  # greedy_decode ends a row early only at EOS or the stop rule
        tokens = [s.token for s in row]
        ended = tokens[-1] == self.tokenizer.eos_token_id or (
            self.stop_at_list_end and ListClosed(self.tokenizer)(tokens))
        return "stop" if ended else "length"

    def _pieces(self, row: Sequence[Step]) -> List[Tuple[str, float]]:
        """(text, log-prob) per token, joining to the decoded answer.

        A character split over several byte tokens (`η`, emoji) belongs to the
        token that completes it; decoding tokens one by one would leave `�`.
        Spaces before punctuation stay: tokenised passages say `Boyzone 's` and
        `Tikaram , Blancmange`, which the tokenizer's clean-up would rewrite.
        """
        ids: List[int] = []
        done = ""
        pieces = []
        for t, lp, _ in row:
            if t == self.tokenizer.eos_token_id:
                break
            ids.append(t)
            text = self.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
            if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for its last byte
                pieces.append(("", lp))
                continue
            pieces.append((text[len(done):], lp))
            done = text
        if ids and text != done:  # ended inside a character
            pieces[-1] = (text[len(done):], pieces[-1][1])
        return pieces


class ListClosed:
    """Stops a row once its answer list is closed: small models ramble on after `]`."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, tokens: Sequence[int]) -> bool:
        if "]" not in self.tokenizer.decode(tokens[-1:]):
            return False
        _, found, closed = scan_list(self.tokenizer.decode(tokens, skip_special_tokens=True,
                                                           clean_up_tokenization_spaces=False))
        return found and closed
