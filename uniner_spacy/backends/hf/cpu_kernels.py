"""Attention and key/value caching for small models on a CPU.

A small model's decode step on a CPU spends most of its time outside the
matrix products: in `DynamicCache` concatenating the whole cache at every
step, in `repeat_kv` copying the key/value heads out to the query heads, and
in SDPA's CPU kernel for one query token (docs/speed.md, "Where the CPU
kernels' time goes"). `GrowingCache` writes new keys in place, and
`grouped_attention` multiplies each key/value head with its group of query
heads directly.

Prefix sharing copies: each passage's cache once per question, and again
whenever finished rows leave the batch. `SharedPrefixCache` keeps each
passage once; the attention reaches it through a (passage, question) grid,
one batched product per layer.

In bf16 small element-wise kernels are a large share of a forward;
`fuse_layers` runs each layer's q/k/v and gate/up projections as one product
and each norm as one kernel, with the original's rounding (the same answers).
It also runs each MLP on the real tokens only, since much of a batch is
padding (passages padded to the longest of their run, questions to the
longest tail, finished rows kept until compaction).

The logits equal SDPA's with a plain cache (tests check both).

All of this reaches into transformers internals (`DynamicCache`'s per-layer
lists and `_seen_tokens`, the attention and mask registries, the decoder
layer's forward, copied), so it runs only where `fast_path()` says the
installed release is one it was written for. Elsewhere the model's own
attention and `DynamicCache` run: the same answers, slower.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

# the transformers releases these kernels were written against, [first, next): 4.53 brought the mask
# registry (masking_utils); 4.54 replaced DynamicCache's per-layer lists with cache layer objects
TRANSFORMERS_WRITTEN_FOR = ((4, 53), (4, 54))
ATTENTION = "uniner_grouped"
# architectures with LLaMA's decoder layer, whose forward `fuse_layers` rewrites
LLAMA_LAYERS = ("llama", "mistral", "qwen2")
# architectures whose attention function computes plain softmax(QKᵀ·scale + mask)·V: LLaMA's, and Gemma 3's,
# whose query/key norms run before the attention function and whose sliding window arrives in the mask
PLAIN_ATTENTION = LLAMA_LAYERS + ("gemma3_text",)


def grouped_attention(module, query, key, value, attention_mask, dropout: float = 0.0,
                      scaling: Optional[float] = None, is_causal=None, **kwargs):
    """Attention for grouped key/value heads without copying keys out to every query head."""
    import torch

    b, heads, q, d = query.shape
    groups = key.shape[1]
    per_group = heads // groups
    shared = kwargs.get("shared_prefix")
    scale = scaling if scaling is not None else d ** -0.5
    # query heads that share a key/value head sit side by side (as repeat_kv lays them out)
    scores = torch.matmul(query.reshape(b, groups, per_group * q, d), key.transpose(-1, -2))
    scores = scores.view(b, groups, per_group, q, key.shape[-2])
    if shared is not None:  # the passage keys, stored once per passage, come first
        prefix_keys, prefix_values = shared.prefix(module.layer_idx)
        scores = torch.cat([shared.prefix_scores(query, prefix_keys), scores], dim=-1)
    scores = scores.mul_(scale)
    length = scores.shape[-1]
    if attention_mask is not None:  # boolean, True where a query may look
        allowed = attention_mask[:, :, None, :, :length]
    elif q > 1:  # no padding anywhere: plain causal
        allowed = torch.ones(q, length, dtype=torch.bool, device=query.device).tril(length - q)
    else:
        allowed = None
    if allowed is not None:
        # a finite minimum: a row with nothing to look at (left padding) gives junk, not NaN
        scores.masked_fill_(~allowed, torch.finfo(scores.dtype).min)
    probs = scores.softmax(-1).view(b, groups, per_group * q, length)
    if shared is None:
        out = torch.matmul(probs, value)
    else:
        split = prefix_keys.shape[-2]
        out = torch.matmul(probs[..., split:], value) + shared.prefix_values(probs[..., :split], prefix_values)
    return out.view(b, heads, q, d).transpose(1, 2).contiguous(), None


def use_grouped_attention(model) -> bool:
    """Switch a loaded transformers model to `grouped_attention`; False where it does not apply."""
    if not fast_path():
        return False
    from transformers import AttentionInterface, masking_utils
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    config = model.config
    if getattr(config, "model_type", None) not in PLAIN_ATTENTION:
        return False
    if getattr(config, "attn_logit_softcapping", None) is not None:  # Gemma 2's: a term this attention lacks
        return False
    if getattr(config, "_attn_implementation", None) not in ("sdpa", "eager", ATTENTION):
        return False
    # named registrations, like spaCy's registry: the boolean mask SDPA gets is what it needs. The
    # variant that broadcasts over the batch (transformers' one for older torch) builds the same mask
    # as the one that vmaps over it, without a call per row: much faster (docs/speed.md)
    AttentionInterface.register(ATTENTION, grouped_attention)
    AttentionMaskInterface.register(ATTENTION, getattr(masking_utils, "sdpa_mask_older_torch", sdpa_mask))
    config._attn_implementation = ATTENTION
    return True


def fuse_layers(model) -> bool:
    """Fewer, larger kernels per decoder layer; the same function of the same weights.

    On this CPU a bf16 forward spent about a third of its time outside the
    matrix products, in small element-wise kernels and their copies. Here each
    attention's q, k and v projections become one product and the rotary
    embedding is applied to queries and keys together; each MLP's gate and up
    projections become one product with SiLU and the product done in place;
    each RMSNorm becomes one `rms_norm` kernel, computed in float32 as the
    original is. The fused weights are the originals' storage (no second copy).
    Where the decoder layers' forward is the one `_layer_forward` copies, the
    decoder finds the real (unmasked) new tokens once per call and each MLP
    runs on those only; padding positions keep their attention output, which
    nothing reads. False, and nothing changed, where the architecture or this
    transformers' attention signature is not the one these forwards were
    written for (or off the `fast_path`).
    """
    import inspect

    import torch

    if not fast_path():
        return False
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    if getattr(model.config, "model_type", None) not in LLAMA_LAYERS:
        return False
    if getattr(model.config, "_attn_implementation", None) not in ALL_ATTENTION_FUNCTIONS:
        return False  # eager attention is no registered function
    layers = getattr(model.get_decoder(), "layers", None)
    if not layers:
        return False
    expected = ["hidden_states", "position_embeddings", "attention_mask", "past_key_value", "cache_position"]
    for layer in layers:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None or not all(
                hasattr(attn, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")):
            return False
        if list(inspect.signature(type(attn).forward).parameters)[1:6] != expected:
            return False
        if not all(hasattr(mlp, a) for a in ("gate_proj", "up_proj", "down_proj")):
            return False
        linears = [attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj]
        if not all(isinstance(getattr(lin, "weight", None), torch.nn.Parameter) for lin in linears):
            return False  # quantized or wrapped layers
    if getattr(model.config, "hidden_act", None) != "silu":
        return False
    for layer in layers:
        _fuse_attention(layer.self_attn)
        _fuse_mlp(layer.mlp)
    decoder = model.get_decoder()
    if _layer_forward_applies(decoder, layers):
        for layer in layers:
            layer.forward = functools.partial(_layer_forward, layer)
        decoder.forward = functools.partial(_decoder_forward, decoder.forward)
    for module in model.modules():
        if type(module).__name__.endswith("RMSNorm") and hasattr(module, "variance_epsilon"):
            module.forward = functools.partial(_rms_norm, module)
    return True


# transformers' (llama, mistral, qwen2) decoder layer forward, whose body `_layer_forward` copies
LAYER_ARGUMENTS = ["hidden_states", "attention_mask", "position_ids", "past_key_value", "output_attentions",
                   "use_cache", "cache_position", "position_embeddings"]


def _layer_forward_applies(decoder, layers) -> bool:
    """Whether the decoder takes (input_ids, attention_mask) first and each layer's forward is the one copied."""
    import inspect

    def arguments(module, n: int) -> List[str]:
        return list(inspect.signature(type(module).forward).parameters)[1 : 1 + n]

    return arguments(decoder, 2) == ["input_ids", "attention_mask"] and all(
        arguments(layer, len(LAYER_ARGUMENTS)) == LAYER_ARGUMENTS and hasattr(layer, "input_layernorm")
        and hasattr(layer, "post_attention_layernorm") for layer in layers)


def _real_tokens(input_ids, attention_mask, inputs_embeds=None):
    """Flat indices of the unmasked positions among a call's new tokens; None when all are."""
    new = input_ids if input_ids is not None else inputs_embeds
    if new is None or attention_mask is None or attention_mask.dim() != 2:
        return None
    flags = attention_mask[:, -new.shape[1]:].reshape(-1)
    return None if bool(flags.all()) else flags.nonzero().squeeze(1)


def _decoder_forward(forward, input_ids=None, attention_mask=None, *args, **kwargs):
    """The decoder's forward, telling each layer which new tokens are real (it passes extra keywords on)."""
    kwargs["real_tokens"] = _real_tokens(input_ids, attention_mask, kwargs.get("inputs_embeds"))
    return forward(input_ids, attention_mask, *args, **kwargs)


def _layer_forward(layer, hidden_states, attention_mask=None, position_ids=None, past_key_value=None,
                   output_attentions=False, use_cache=False, cache_position=None, position_embeddings=None,
                   real_tokens=None, **kwargs):
    """transformers' LlamaDecoderLayer.forward, with the MLP run on the `real_tokens` rows only."""
    residual = hidden_states
    hidden, weights = layer.self_attn(
        hidden_states=layer.input_layernorm(hidden_states), attention_mask=attention_mask,
        position_ids=position_ids, past_key_value=past_key_value, output_attentions=output_attentions,
        use_cache=use_cache, cache_position=cache_position, position_embeddings=position_embeddings, **kwargs)
    hidden = residual + hidden
    if real_tokens is None:
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    else:  # padding rows keep the attention's output: nothing downstream reads them
        flat = hidden.view(-1, hidden.shape[-1])
        picked = flat.index_select(0, real_tokens)
        flat.index_copy_(0, real_tokens, picked + layer.mlp(layer.post_attention_layernorm(picked)))
    return (hidden, weights) if output_attentions else (hidden,)


def _concatenated(linears) -> Tuple:
    """One weight (and bias) for several linears; each original becomes a view of it."""
    import torch

    weight = torch.cat([lin.weight.data for lin in linears])
    biases = [lin.bias for lin in linears]
    bias = None if any(b is None for b in biases) else torch.cat([b.data for b in biases])
    start = 0
    for lin in linears:
        n = lin.weight.shape[0]
        lin.weight.data = weight[start : start + n]
        if bias is not None:
            lin.bias.data = bias[start : start + n]
        start += n
    return weight, bias


def _fuse_mlp(mlp) -> None:
    mlp._gate_up = _concatenated([mlp.gate_proj, mlp.up_proj])
    mlp.forward = functools.partial(_mlp_forward, mlp)


def _mlp_forward(mlp, x):
    import torch.nn.functional as F

    gate, up = F.linear(x, *mlp._gate_up).chunk(2, dim=-1)
    return mlp.down_proj(F.silu(gate).mul_(up))


def _rms_norm(norm, x):
    import torch
    import torch.nn.functional as F

    weight = norm.weight
    if x.dtype != torch.float32:  # the original normalises in float32, then rounds, then scales
        return F.rms_norm(x.float(), weight.shape, eps=norm.variance_epsilon).to(x.dtype) * weight
    return F.rms_norm(x, weight.shape, weight, norm.variance_epsilon)


def _fuse_attention(attn) -> None:
    attn._qkv = _concatenated([attn.q_proj, attn.k_proj, attn.v_proj])
    attn._heads = attn.q_proj.weight.shape[0] // attn.head_dim
    attn._kv_heads = attn.k_proj.weight.shape[0] // attn.head_dim
    attn.forward = functools.partial(_attention_forward, attn)


def _attention_forward(attn, hidden_states, position_embeddings, attention_mask, past_key_value=None,
                       cache_position=None, **kwargs):
    """transformers' LlamaAttention.forward, with one q/k/v product and one rotary pass."""
    import torch
    import torch.nn.functional as F
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    shape = hidden_states.shape[:-1]
    heads, kv = attn._heads, attn._kv_heads
    qkv = F.linear(hidden_states, *attn._qkv).view(*shape, heads + 2 * kv, attn.head_dim).transpose(1, 2)
    qk, values = qkv[:, : heads + kv], qkv[:, heads + kv :]
    cos, sin = position_embeddings
    half = attn.head_dim // 2
    rotated = torch.cat((qk[..., half:].neg(), qk[..., :half]), dim=-1)  # rotate_half, both at once
    qk = rotated.mul_(sin.unsqueeze(1)).add_(qk * cos.unsqueeze(1))
    queries, keys = qk[:, :heads], qk[:, heads:]
    if past_key_value is not None:
        keys, values = past_key_value.update(keys, values, attn.layer_idx,
                                             {"sin": sin, "cos": cos, "cache_position": cache_position})
    out, weights = ALL_ATTENTION_FUNCTIONS[attn.config._attn_implementation](
        attn, queries, keys, values, attention_mask, dropout=0.0, scaling=attn.scaling, **kwargs)
    return attn.o_proj(out.reshape(*shape, -1).contiguous()), weights


@functools.lru_cache(maxsize=None)
def fast_path() -> bool:
    """Whether the installed transformers and torch are what this module's kernels and caches were
    written against; where not, it logs once that the model's own code runs instead."""
    reason = _fast_path_missing()
    if reason:
        logger.warning("uniner-spacy's CPU kernels and in-place key/value cache are off: %s. The model's own "
                       "attention and cache run instead (the same answers, slower).", reason)
    return not reason


def _fast_path_missing() -> str:
    """What the installed libraries lack for the fast path; empty when nothing."""
    import importlib.util

    import torch.nn.functional as F
    import transformers
    from packaging.version import Version
    from transformers import DynamicCache

    found = Version(transformers.__version__).release[:2]
    first, after = TRANSFORMERS_WRITTEN_FOR
    if not first <= found < after:
        return (f"they were written for transformers {'.'.join(map(str, first))}.x and "
                f"{transformers.__version__} is installed")
    if not isinstance(getattr(DynamicCache(), "key_cache", None), list):
        return "this transformers' DynamicCache keeps no per-layer key/value lists"
    if importlib.util.find_spec("transformers.masking_utils") is None or not hasattr(transformers,
                                                                                     "AttentionInterface"):
        return "this transformers has no attention and mask registries"
    if not hasattr(F, "rms_norm"):
        return "this torch has no rms_norm kernel"
    return ""


def growing_cache(spare: int = 64, storage: Optional[Callable] = None):
    """A `DynamicCache` that appends in place (a plain one off the `fast_path`); `storage` supplies its
    buffers (`PassageSlab`)."""
    from transformers import DynamicCache

    return _growing_cache_class()(spare, storage) if fast_path() else DynamicCache()


@functools.lru_cache(maxsize=None)  # one class per process: lazy, since torch is imported lazily
def _growing_cache_class():
    import torch
    from transformers import DynamicCache

    class GrowingCache(DynamicCache):
        """Keys and values live in buffers with spare room; the cache holds views of their used part."""

        def __init__(self, spare: int = 64, storage: Optional[Callable] = None):
            super().__init__()
            self.spare = spare
            self._storage = storage  # (like, room, layer, 0 keys / 1 values) -> a buffer; else a new one
            self._buffers: List[Tuple[torch.Tensor, torch.Tensor]] = []

        @classmethod
        def over(cls, buffers: Sequence[Tuple[torch.Tensor, torch.Tensor]], used: int) -> "GrowingCache":
            """A cache over (keys, values) buffers whose first `used` positions are filled already."""
            cache = cls(spare=0)
            cache._buffers = list(buffers)
            cache.key_cache = [k[:, :, :used] for k, _ in cache._buffers]
            cache.value_cache = [v[:, :, :used] for _, v in cache._buffers]
            cache._seen_tokens = used
            return cache

        def update(self, key_states, value_states, layer_idx: int, cache_kwargs=None):
            if layer_idx == 0:
                self._seen_tokens += key_states.shape[-2]
            n = key_states.shape[-2]
            if layer_idx >= len(self._buffers):  # layers arrive in order, first write
                used = 0
                self._buffers.append((self._new(key_states, n, layer_idx, 0), self._new(value_states, n, layer_idx, 1)))
                self.key_cache.append(key_states)
                self.value_cache.append(value_states)
            else:
                used = self.key_cache[layer_idx].shape[-2]
                if used + n > self._buffers[layer_idx][0].shape[-2]:
                    self._buffers[layer_idx] = tuple(self._grown(buf, used, used + n)
                                                     for buf in self._buffers[layer_idx])
            keys, values = self._buffers[layer_idx]
            keys[:, :, used : used + n] = key_states
            values[:, :, used : used + n] = value_states
            self.key_cache[layer_idx] = keys[:, :, : used + n]
            self.value_cache[layer_idx] = values[:, :, : used + n]
            return self.key_cache[layer_idx], self.value_cache[layer_idx]

        def _new(self, like, n: int, layer: int, kind: int):
            if self._storage is not None:
                return self._storage(like, n + self.spare, layer, kind)
            b, h, _, d = like.shape
            return like.new_empty((b, h, n + self.spare, d))

        def _grown(self, buf, used: int, need: int):
            b, h, _, d = buf.shape
            out = buf.new_empty((b, h, need + max(self.spare, need // 2), d))
            out[:, :, :used] = buf[:, :, :used]
            return out

        def _reindex(self, fn) -> None:
            for i, (keys, values) in enumerate(self._buffers):
                used = self.key_cache[i].shape[-2]
                room = min(keys.shape[-2], used + 16)  # copies carry little spare room: they are the cost
                keys, values = fn(keys[:, :, :room]), fn(values[:, :, :room])
                self._buffers[i] = (keys, values)
                self.key_cache[i] = keys[:, :, :used]
                self.value_cache[i] = values[:, :, :used]

        def batch_select_indices(self, indices) -> None:
            self._reindex(lambda t: t[indices])

    return GrowingCache


class PassageSlab:
    """Every passage's keys and values in one buffer per layer, which each run of passages fills in place.

    Passages are encoded in runs of similar length, each padded to its own
    longest. Stacking the runs' caches afterwards copied every passage's keys
    three times (pad, concatenate, copy into a buffer with room), and fresh
    memory costs a page fault per page, which dominated the passage prefill
    (docs/speed.md). Here a run
    writes its rows' keys into the slab's rows directly, ending at the slab's
    last position, with zeros before it (padding, masked; zeros, not leftover
    bytes, since masked values are still multiplied by zero probabilities).
    """

    def __init__(self, rows: int, width: int):
        self.rows, self.width = rows, width
        self._layers: Dict[Tuple[int, int], "object"] = {}

    def _buffer(self, like, layer: int, kind: int):
        if (layer, kind) not in self._layers:
            self._layers[(layer, kind)] = like.new_empty((self.rows, like.shape[1], self.width, like.shape[3]))
        return self._layers[(layer, kind)]

    def run(self, rows: slice, start: int, opening=None):
        """A cache for slab rows `rows` that writes from position `start` on; it begins with `opening`
        (a one-row cache every row continues), when given."""
        def storage(like, room: int, layer: int, kind: int):
            buf = self._buffer(like, layer, kind)
            buf[rows, :, :start].zero_()
            return buf[rows, :, start:]

        cache = growing_cache(spare=0, storage=storage)
        if opening is not None:
            n = rows.stop - rows.start
            for layer, (keys, values) in enumerate(zip(opening.key_cache, opening.value_cache)):
                cache.update(keys.expand(n, -1, -1, -1), values.expand(n, -1, -1, -1), layer)
        return cache

    def cache(self):
        """The whole slab as one cache, once every run has been written."""
        layers = len(self._layers) // 2
        return _growing_cache_class().over([(self._layers[(i, 0)], self._layers[(i, 1)]) for i in range(layers)],
                                           self.width)


# room each question row's keys start with. A row's slot is its own run of memory, so the first write
# touches a fresh page per (row, head) whatever the room: a small room faults far fewer pages, and the
# answers that do not fit are few (docs/speed.md). A longer one grows the buffer once by half
QUESTION_ROOM = 16


def shared_prefix_cache(prefix, owners: Sequence[int], spare: int = QUESTION_ROOM):
    """Rows that continue `prefix`'s rows (row i continues `owners[i]`), without copying the prefix.

    Expanding a passage cache to one row per question copied it once per
    type, and every later drop of finished rows copied it again. Here each
    passage's keys stay stored once; `grouped_attention` (given this cache
    as `shared_prefix`) attends to them per passage and to each row's own
    keys (question and answer) separately.
    """
    return _shared_cache_class()(prefix, owners, spare)


@functools.lru_cache(maxsize=None)
def _shared_cache_class():
    import torch

    class SharedPrefixCache(_growing_cache_class()):
        def __init__(self, prefix, owners: Sequence[int], spare: int = QUESTION_ROOM):
            super().__init__(spare)
            self._prefix = [(k, v) for k, v in zip(prefix.key_cache, prefix.value_cache)]
            self.prefix_length = prefix.get_seq_length()
            self._layout(torch.tensor(list(owners), device=self._prefix[0][0].device))

        def _layout(self, owners) -> None:
            """Each row's slot in a (passage, question) grid: one batched product per layer serves all rows."""
            self.owners = owners
            self.passages = len(self._prefix[0][0])
            rank: List[int] = []
            seen: Dict[int, int] = {}
            for o in owners.tolist():
                rank.append(seen.get(o, 0))
                seen[o] = rank[-1] + 1
            self.width = max(seen.values(), default=1)
            self.rank = torch.tensor(rank, dtype=owners.dtype, device=owners.device)

        def prefix(self, layer_idx: int):
            return self._prefix[layer_idx]

        def get_seq_length(self, layer_idx: Optional[int] = 0) -> int:
            return self.prefix_length + super().get_seq_length(layer_idx)

        def _grid(self, rows):
            """(rows, groups, m, x) → (passages, groups, width * m, x), empty slots zero.

            The grid is laid out (passage, group, slot), so writing the rows
            into it is the only copy and the product reads it as a view."""
            b, g, m, x = rows.shape
            full = b == self.passages * self.width  # every slot taken: nothing to clear
            grid = (rows.new_empty if full else rows.new_zeros)((self.passages, g, self.width, m, x))
            grid[self.owners, :, self.rank] = rows
            return grid.view(self.passages, g, self.width * m, x)

        def _rows(self, grid, g: int, m: int):
            """The inverse of `_grid`: one gather, no transposed copy first."""
            return grid.view(self.passages, g, self.width, m, grid.shape[-1])[self.owners, :, self.rank]

        def prefix_scores(self, query, prefix_keys):
            """(rows, groups, per_group, q, prefix length): each row's query against its passage's keys."""
            b, heads, q, d = query.shape
            g = prefix_keys.shape[1]
            grouped = query.reshape(b, g, heads // g * q, d)
            scores = torch.matmul(self._grid(grouped), prefix_keys.transpose(-1, -2))
            return self._rows(scores, g, heads // g * q).view(b, g, heads // g, q, -1)

        def prefix_values(self, probs, prefix_values):
            """(rows, groups, per_group * q, d): the prefix part of each row's attention output."""
            b, g, m, _ = probs.shape
            out = torch.matmul(self._grid(probs), prefix_values)
            return self._rows(out, g, m)

        def _reindex(self, fn) -> None:
            """Passages whose questions have all finished leave the grid once they are half of it: the
            long answers of a few rows at the end of a batch cost a step over every passage of the
            batch otherwise. Not sooner: the copy is of fresh memory, and a step reads each passage
            once, so copying most of them costs more than the steps it makes shorter."""
            super()._reindex(fn)
            owners = fn(self.owners)
            used, inverse = torch.unique(owners, return_inverse=True)
            if len(used) * 2 <= self.passages:
                self._prefix = [(k[used], v[used]) for k, v in self._prefix]
                owners = inverse
            self._layout(owners)

    return SharedPrefixCache
