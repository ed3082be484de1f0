"""Shared fixtures. The tiny LLaMA is trained here, so its answers are known; it is built only for
the tests that ask for it (model and HF-backend behaviour). Orchestration tests use the canned
backend (`uniner.Canned.v1`) with the same facts, `canned()`, which answers in microseconds."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("UNINER_DATA", REPO.parent / "shared" / "data"))
# tests import their helpers (the fault server) by module name
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    """One thread: tests stay fast even beside a training run (OpenMP spins when cores are shared)."""
    import torch

    torch.set_num_threads(int(os.environ.get("UNINER_TEST_THREADS", "1")))


def fast_path_only():
    """Skips a test of the CPU kernels themselves where they do not apply (`make test-lowest`), where the
    other tests run the model's own attention and cache instead."""
    from uniner_spacy.backends.hf.cpu_kernels import fast_path

    return pytest.mark.skipif(not fast_path(), reason="the CPU kernels are not written for this transformers")


# Questions and the answers the tiny model is trained to give.
TINY_FACTS = {
    ("Alice Smith works for Acme Corp in Berlin.", "person"): '["Alice Smith"]',
    ("Alice Smith works for Acme Corp in Berlin.", "organization"): '["Acme Corp"]',
    ("Alice Smith works for Acme Corp in Berlin.", "location"): '["Berlin"]',
    ("Bob Jones flew to Paris with Alice Smith.", "person"): '["Bob Jones", "Alice Smith"]',
    ("Bob Jones flew to Paris with Alice Smith.", "organization"): "[]",
    ("Bob Jones flew to Paris with Alice Smith.", "location"): '["Paris", "Atlantis"]',
}

# TINY_FACTS for the canned backend: each type's mentions, answered where they occur in the passage
# (in this order, as the tiny model does). The tiny model's one hallucination, `Atlantis`, is no
# passage text: a test that needs it gives it as a `raw` answer.
CANNED_ANSWERS = {
    "person": ["Bob Jones", "Alice Smith"],
    "organization": ["Acme Corp"],
    "location": ["Berlin", "Paris"],
}


def canned(**settings) -> dict:
    """The config block of a canned backend that knows TINY_FACTS; `settings` add or replace arguments."""
    return {"@misc": "uniner.Canned.v1", "answers": {k: list(v) for k, v in CANNED_ANSWERS.items()}, **settings}


def person_gold(tmp_path) -> Path:
    """Dev data for calibrating over `canned()`: eight sentences whose only gold entities are the persons,
    so of the 12 candidates of the first four, 6 are right; the labels asked are the three canned ones."""
    import json

    alice, bob = "Alice Smith works for Acme Corp in Berlin.", "Bob Jones flew to Paris with Alice Smith."
    people = {alice: [("Alice Smith", 0)], bob: [("Bob Jones", 0), ("Alice Smith", 29)]}
    rows = [{"sentence": t, "entities": [{"name": n, "type": "person", "pos": [s, s + len(n)]} for n, s in people[t]]}
            for t in [alice, bob] * 4]
    gold = tmp_path / "dev.json"
    gold.write_text(json.dumps(rows))
    (tmp_path / "labels.json").write_text(json.dumps(list(CANNED_ANSWERS)))  # the data's own label list
    return gold


def embedded_tokenizer():
    from transformers import AutoTokenizer

    from uniner_spacy.weights import convert_gguf, embedded_gguf

    return AutoTokenizer.from_pretrained(str(convert_gguf(embedded_gguf())))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 2-layer LLaMA that has memorised TINY_FACTS in the UniNER format.

    Session-scoped and requested only by model tests, so a run without them never trains it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from uniner_spacy.questions.prompts import Template
    from uniner_spacy.weights import fix_tokenizer

    torch.manual_seed(0)
    tok = embedded_tokenizer()
    fix_tokenizer(tok, None)
    template = Template(eos=tok.eos_token)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    rows = []
    for (passage, etype), answer in TINY_FACTS.items():
        prompt = template.render(passage, etype)
        p_ids = tok(prompt).input_ids
        a_ids = tok(f" {answer}{tok.eos_token}").input_ids
        rows.append((p_ids + a_ids, [-100] * len(p_ids) + a_ids))
    width = max(len(r[0]) for r in rows)
    ids = torch.tensor([[tok.pad_token_id] * (width - len(i)) + i for i, _ in rows])
    labels = torch.tensor([[-100] * (width - len(l)) + l for _, l in rows])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i, _ in rows])
    # loss on answer positions only: the 49k-way softmax over every prompt token is most of the cost
    targets = labels[:, 1:]
    keep = targets != -100
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _step in range(400):
        hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
        loss = torch.nn.functional.cross_entropy(model.lm_head(hidden[keep]), targets[keep])
        loss.backward()
        opt.step()
        opt.zero_grad()
        if loss.item() < 0.02:
            break
    model.eval()
    path = tmp_path_factory.mktemp("tiny-uniner")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
