"""`training.soup`: LoRA adapters averaged into one adapter, exactly.

Two LoRA adapters of different ranks and alphas on a tiny LLaMA, with random A and B: the soup,
loaded and merged by peft as any adapter is, must give each adapted weight the weighted mean of the
two adapters' merged weights. A soup that only averaged A and B separately would not (the update is
their product); one that forgot each adapter's alpha/r scaling would be off by that factor.
"""
import json

import pytest

pytest.importorskip("peft")


def tiny():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64))


def adapter(folder, r, alpha, seed, targets=("q_proj", "v_proj", "down_proj")):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = get_peft_model(tiny(), LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets),
                                              init_lora_weights=False))  # B random too: a trained look
    model.save_pretrained(folder)
    return folder


def merged(folder):
    from peft import PeftModel

    return PeftModel.from_pretrained(tiny(), folder).merge_and_unload().state_dict()


def test_a_soup_adds_the_weighted_mean_of_the_updates(tmp_path):
    import torch

    from training.soup import SOUP_FILE, soup

    a = adapter(tmp_path / "a", r=4, alpha=8, seed=1)
    b = adapter(tmp_path / "b", r=2, alpha=16, seed=2)
    out = soup([a, b], tmp_path / "soup", weights=[3, 1])
    base, ma, mb, ms = tiny().state_dict(), merged(a), merged(b), merged(out)
    changed = [k for k in base if not torch.equal(ma[k], base[k])]
    assert len(changed) == 3  # q, v and down projections of the one layer
    for k in base:
        torch.testing.assert_close(ms[k], 0.75 * ma[k] + 0.25 * mb[k], rtol=1e-5, atol=1e-6)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 6 and config["lora_alpha"] == 6
    parts = json.loads((out / SOUP_FILE).read_text())["parts"]
    assert [p["weight"] for p in parts] == [0.75, 0.25] and all(len(p["sha256"]) == 64 for p in parts)


def test_adapters_of_other_modules_are_refused(tmp_path):
    from training.soup import soup
    from uniner_spacy.errors import InputError

    a = adapter(tmp_path / "a", r=4, alpha=8, seed=1)
    b = adapter(tmp_path / "b", r=4, alpha=8, seed=2, targets=("q_proj", "k_proj"))
    with pytest.raises(InputError, match="differ in target_modules"):
        soup([a, b], tmp_path / "soup")
    config = json.loads((a / "adapter_config.json").read_text())
    c = adapter(tmp_path / "c", r=4, alpha=8, seed=3)
    (c / "adapter_config.json").write_text(json.dumps({**config, "rank_pattern": {"q_proj": 2}}))
    with pytest.raises(InputError, match="one rank and alpha for every module"):
        soup([a, c], tmp_path / "soup")
    with pytest.raises(InputError, match="at least two"):
        soup([a], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()
