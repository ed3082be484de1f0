"""Greedy decoding with finished rows dropped equals transformers' generate."""
import pytest
from conftest import TINY_FACTS, fast_path_only

from uniner_spacy.backends.base import common_head
from uniner_spacy.backends.hf.decoding import greedy_decode

TEXTS = sorted({p for p, _ in TINY_FACTS})


@pytest.mark.parametrize(
    "texts,head",
    [
        (
            ["USER: What describes person in the text?", "USER: What describes location in the text?"],
            "USER: What describes",
        ),
        (["USER: What describes person in the text?"], "USER: What describes person in the"),
        (["abc", "abd"], ""),
        ([" x", " y"], ""),
        (["a  b", "a  c"], ""),  # a run of spaces is its own token: never cut inside it
        ([], ""),
    ],
)
def test_common_head_ends_before_a_word(texts, head):
    assert common_head(texts) == head


def test_greedy_decode_equals_generate(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tok.padding_side = "left"
    prompts = [f"Text: {t} What describes person in the text?" for t in TEXTS] + ["Short."]
    enc = tok(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        ref = model.generate(**enc, do_sample=False, max_new_tokens=12, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id, output_scores=True, return_dict_in_generate=True)
        ref_lp = model.compute_transition_scores(ref.sequences, ref.scores, normalize_logits=True)
    rows = greedy_decode(model, enc.input_ids, enc.attention_mask, eos_id=tok.eos_token_id, max_new_tokens=12)
    width = enc.input_ids.shape[1]
    for row, seq, lps in zip(rows, ref.sequences[:, width:].tolist(), ref_lp.tolist()):
        n = len(row)
        assert [s.token for s in row] == seq[:n]
        assert n == 12 or seq[n - 1] == tok.eos_token_id
        # generate's own scores differ from a plain forward pass by ~1e-3 here; ours match the forward pass
        assert [s.logprob for s in row] == pytest.approx(lps[:n], abs=5e-3)


def random_model(architecture: str, seed: int, bias: bool = False):
    """A tiny randomly initialised decoder: LLaMA's (the SmolLM2 student) or Gemma 3's (one key/value
    head, query/key norms, a sliding window of 4 tokens on its first layer, so the window matters)."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if architecture == "llama":
        config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, pad_token_id=0,
                             attention_bias=bias, attn_implementation="sdpa")
        return LlamaForCausalLM(config).eval()
    config = Gemma3TextConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=1, head_dim=16, pad_token_id=0,
                              sliding_window=4, layer_types=["sliding_attention", "full_attention"],
                              attention_bias=bias, attn_implementation="sdpa")
    return Gemma3ForCausalLM(config).eval()


@fast_path_only()
@pytest.mark.parametrize("architecture", ["llama", "gemma3_text"])
def test_grouped_attention_and_growing_cache_equal_sdpa(architecture):
    """The CPU fast path changes speed, not numbers: same logits as SDPA with a DynamicCache."""
    import torch
    from transformers import DynamicCache

    from uniner_spacy.backends.hf.cpu_kernels import growing_cache, use_grouped_attention

    model = random_model(architecture, seed=0)
    assert model.config.model_type == architecture
    ids = torch.randint(1, 97, (3, 7))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # left padding, as batches have
    mask[2, :1] = 0

    def run(cache):
        out, m, i = [], mask, ids
        pos = (m.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            for step in range(4):
                logits = model(input_ids=i, attention_mask=m, position_ids=pos, past_key_values=cache,
                               use_cache=True).logits[:, -1]
                out.append(logits)
                nxt = logits.argmax(-1, keepdim=True)
                if step == 1:  # a row leaves the batch
                    keep = torch.tensor([0, 2])
                    cache.batch_select_indices(keep)
                    m, pos, nxt = m[keep], pos[keep], nxt[keep]
                i, pos = nxt, pos[:, -1:] + 1
                m = torch.cat([m, m.new_ones((m.shape[0], 1))], dim=1)
        return out

    ref = run(DynamicCache())
    assert use_grouped_attention(model)
    fast = run(growing_cache(spare=2))  # spare=2: the buffers must also grow
    for a, b in zip(ref, fast):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)



@fast_path_only()
def test_grouped_attention_refuses_soft_capped_attention():
    """Gemma 3 with attention-logit soft-capping (Gemma 2 has it) is no plain attention: its own path runs."""
    from uniner_spacy.backends.hf.cpu_kernels import use_grouped_attention

    model = random_model("gemma3_text", seed=0)
    model.config.attn_logit_softcapping = 50.0
    assert not use_grouped_attention(model) and model.config._attn_implementation == "sdpa"


@fast_path_only()
def test_grouped_attention_builds_the_mask_sdpa_gets():
    """The mask builder registered with the grouped attention (the one that broadcasts over the
    batch) gives transformers' own SDPA mask, padding and all."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from uniner_spacy.backends.hf.cpu_kernels import ATTENTION, use_grouped_attention

    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2, attn_implementation="sdpa"))
    assert use_grouped_attention(model)
    padding = torch.ones(3, 9, dtype=torch.bool)
    padding[1, :3] = padding[2, :6] = False
    for positions in (torch.arange(5, 9), torch.arange(8, 9), torch.arange(9)):
        ours = AttentionMaskInterface()[ATTENTION](3, positions, 9, attention_mask=padding)
        assert torch.equal(ours, sdpa_mask(3, positions, 9, attention_mask=padding))


@fast_path_only()
@pytest.mark.parametrize("bias", [False, True])
def test_fused_layers_equal_the_originals(bias):
    """One q/k/v product, one gate/up product, one norm kernel: the same logits, the same weights
    (the originals become views of the fused ones), the same state dict."""
    import torch

    from uniner_spacy.backends.hf.cpu_kernels import fuse_layers, growing_cache, use_grouped_attention

    model = random_model("llama", seed=2, bias=bias)
    assert use_grouped_attention(model)
    ids = torch.randint(1, 97, (3, 7))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0
    pos = (mask.cumsum(-1) - 1).clamp(min=0)

    step_mask = torch.ones_like(mask[:, :1])
    step_mask[2] = 0  # a finished row kept in the batch

    def run():
        with torch.inference_mode():
            cache = growing_cache()
            first = model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                          use_cache=True).logits
            step = model(input_ids=ids[:, -1:], attention_mask=torch.cat([mask, step_mask], 1),
                         position_ids=pos[:, -1:] + 1, past_key_values=cache, use_cache=True).logits
        # what is read: real positions (the fused MLP skips padding, whose logits nothing uses)
        return first[mask.bool()], step[:2]

    ref, state = run(), {k: v.clone() for k, v in model.state_dict().items()}
    assert fuse_layers(model)
    mlp_inputs = []
    mlp = model.model.layers[0].mlp
    mlp.register_forward_hook(lambda module, args, out: mlp_inputs.append(args[0].shape))
    for a, b in zip(ref, run()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert mlp_inputs[0][-2:] == (int(mask.sum()), 64) and mlp_inputs[1][-2:] == (2, 64)  # real tokens only
    assert {k: v for k, v in model.state_dict().items()}.keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.weight.data_ptr() == attn._qkv[0].data_ptr()  # a view, not a second copy


@fast_path_only()
def test_fuse_layers_leaves_other_models_alone():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from uniner_spacy.backends.hf.cpu_kernels import fuse_layers, use_grouped_attention

    config = LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=2, attn_implementation="eager")
    model = LlamaForCausalLM(config).eval()
    assert not fuse_layers(model)  # eager attention: no registered function for the fused forward
    assert use_grouped_attention(model)
    model.model.layers[0].mlp.gate_proj = torch.nn.Identity()  # not a linear with a weight
    assert not fuse_layers(model) and not hasattr(model.model.layers[0].self_attn, "_qkv")


@fast_path_only()
def test_passage_slab_fills_runs_in_place_behind_zeros():
    """Runs of passages write into one buffer per layer, each ending at its last position with zeros before
    it (not whatever the memory held: masked values still meet zero probabilities), and the whole slab
    is one cache over that buffer: nothing is stacked or copied afterwards."""
    import torch

    from uniner_spacy.backends.hf.cpu_kernels import PassageSlab, growing_cache

    def full(rows, length, value):
        return torch.full((rows, 2, length, 4), value)

    opening = growing_cache()
    opening.update(full(1, 2, 1.0), full(1, 2, -1.0), 0)
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # new memory comes filled with NaN
    try:
        slab = PassageSlab(rows=3, width=6)
        first = slab.run(slice(0, 2), 0, opening)  # rows 0-1: the opening, then 4 positions
        first.update(full(2, 4, 2.0), full(2, 4, -2.0), 0)
        second = slab.run(slice(2, 3), 2, opening)  # row 2: 2 positions, padded in front
        second.update(full(1, 2, 3.0), full(1, 2, -3.0), 0)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    whole = slab.cache()
    keys, values = whole.key_cache[0], whole.value_cache[0]
    assert keys.shape == (3, 2, 6, 4) and whole.get_seq_length() == 6
    assert keys[:2, :, :2].eq(1).all() and keys[:2, :, 2:].eq(2).all() and values[:2, :, 2:].eq(-2).all()
    assert keys[2, :, :2].eq(0).all() and values[2, :, :2].eq(0).all()
    assert keys[2, :, 2:4].eq(1).all() and keys[2, :, 4:].eq(3).all()
    assert second.key_cache[0].data_ptr() == keys[2, :, 2:].data_ptr()  # a view of the slab


@fast_path_only()
@pytest.mark.parametrize("architecture", ["llama", "gemma3_text"])
def test_shared_prefix_cache_equals_expanded_cache(architecture):
    """Passages stored once (one grid product per layer) give the logits of one copy per question."""
    import torch

    from uniner_spacy.backends.hf.cpu_kernels import growing_cache, shared_prefix_cache, use_grouped_attention

    model = random_model(architecture, seed=1)
    assert use_grouped_attention(model)
    passages = torch.randint(1, 97, (2, 6))
    pmask = torch.ones_like(passages)
    pmask[1, :2] = 0  # the second passage is shorter
    owners = [0, 0, 1, 1, 1]
    tails = torch.randint(1, 97, (5, 3))
    tmask = torch.ones_like(tails)
    tmask[2, 0] = 0  # and one question's tail too

    def run(expand: bool):
        with torch.inference_mode():
            cache = growing_cache()
            pos = (pmask.cumsum(-1) - 1).clamp(min=0)
            model(input_ids=passages, attention_mask=pmask, position_ids=pos, past_key_values=cache, use_cache=True)
            index = torch.tensor(owners)
            extra = {}
            if expand:
                cache.batch_select_indices(index)
            else:
                cache = shared_prefix_cache(cache, owners)
                extra = {"shared_prefix": cache}
            mask = torch.cat([pmask[index], tmask], dim=1)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            ids, step_pos, out = tails, pos[:, -3:], []
            for step in range(3):
                logits = model(input_ids=ids, attention_mask=mask, position_ids=step_pos, past_key_values=cache,
                               use_cache=True, **extra).logits[:, -1]
                out.append(logits)
                ids = logits.argmax(-1, keepdim=True)
                if step < 2:  # rows 1 and 3 finish, then row 0: the first passage has no questions left
                    keep = torch.tensor([0, 2, 4] if step == 0 else [1, 2])
                    cache.batch_select_indices(keep)
                    mask, step_pos, ids = mask[keep], step_pos[keep], ids[keep]
                    if not expand and step == 1:
                        assert cache.passages == 1
                step_pos = step_pos[:, -1:] + 1
                mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        return out

    for a, b in zip(run(expand=True), run(expand=False)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
