"""Training data and the fine-tuning script: loss masks, conversations, a tiny run.

Nothing here needs the shared data folder or the embedded model: the tokenizer
is the embedded one when installed (for the exact mask check), and the model is
a tiny randomly initialised Llama built in the test.
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from training.conversations import (  # noqa: E402
    BuildOptions,
    Conversation,
    asked_text,
    build_conversations,
    chunk_example,
    read_jsonl,
    to_uniner_json,
    write_jsonl,
)
from uniner_spacy.questions.prompts import question  # noqa: E402
from uniner_spacy.types import AnnotatedText, Entity  # noqa: E402

EOS = "<|im_end|>"


def _ex(text, ents, labels, source="s"):
    return AnnotatedText(text=text, entities=[Entity(text.index(m), text.index(m) + len(m), lab) for m, lab in ents],
                   labels=labels, source=source)


EXAMPLES = [
    _ex("Barack Obama met Angela Merkel in Berlin and Obama smiled.",
        [("Barack Obama", "person"), ("Angela Merkel", "person"), ("Berlin", "location"), ("Obama smiled", "person")],
        ["person", "location", "organization", "else"], "conll"),
    _ex("Aspirin reduces fever.", [("Aspirin", "chemical"), ("fever", "disease")], ["chemical", "disease"], "bc5cdr"),
    _ex("Nothing to see here.", [], ["person", "location", "organization", "else"], "conll"),
    _ex("Kodansha published the manga in Tokyo.", [("Kodansha", "publisher")], ["publisher"], "pile"),
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """The embedded student tokenizer when available, else a tiny trained BPE with the same specials."""
    try:
        from transformers import AutoTokenizer

        from uniner_spacy.weights import convert_gguf, embedded_gguf

        return AutoTokenizer.from_pretrained(str(convert_gguf(embedded_gguf())))
    except Exception:  # noqa: BLE001 - fall back to a tokenizer trained here
        return _tiny_tokenizer(tmp_path_factory.mktemp("tok"))


def _tiny_tokenizer(folder: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<|im_start|>", EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [c.render(EOS)[0] for c in build_conversations(EXAMPLES)] * 5
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, unk_token="<unk>")
    fast.save_pretrained(str(folder))
    return fast


# ---------------------------------------------------------------- conversations


def test_all_positive_types_present_with_ordered_deduplicated_answers():
    convs = build_conversations(EXAMPLES, BuildOptions(negative_share=0.0, seed=1))
    first = convs[0]
    answers = dict(first.turns)
    assert set(answers) == {"person", "location"}
    assert json.loads(answers["person"]) == ["Barack Obama", "Angela Merkel", "Obama smiled"]
    assert json.loads(answers["location"]) == ["Berlin"]
    assert first.source == "conll" and first.passage == EXAMPLES[0].text


def test_negatives_only_from_the_source_label_set():
    many = [EXAMPLES[1]] * 50 + [EXAMPLES[3]] * 50 + [EXAMPLES[0]] * 50
    convs = build_conversations(many, BuildOptions(negative_share=0.6, seed=3))
    for conv, ex in zip(convs, many):
        positives = {e.label for e in ex.entities}
        for asked, answer in conv.turns:
            assert asked in ex.labels
            assert (answer == "[]") == (asked not in positives)
    # the pile example has no other label: never a negative there
    assert all(c.n_negative == 0 for c in convs[50:100])
    # conll sentences do get negatives, drawn from organization/else only
    negs = Counter(t for c in convs[100:] for t, a in c.turns if a == "[]")
    assert negs and set(negs) <= {"organization", "else"}


def test_turns_are_shuffled_and_seed_reproducible():
    text = " ".join(f"w{i}" for i in range(12))
    ents = [Entity(text.index(f"w{i}"), text.index(f"w{i}") + len(f"w{i}"), f"t{i}") for i in range(12)]
    ex = AnnotatedText(text, ents, [f"t{i}" for i in range(12)], "x")
    a = build_conversations([ex] * 5, BuildOptions(seed=7))
    b = build_conversations([ex] * 5, BuildOptions(seed=7))
    c = build_conversations([ex] * 5, BuildOptions(seed=8))
    assert [x.turns for x in a] == [x.turns for x in b]
    assert [x.turns for x in a] != [x.turns for x in c]
    orders = {tuple(t for t, _ in conv.turns) for conv in a}
    assert len(orders) > 1  # not in a fixed order
    assert tuple(f"t{i}" for i in range(12)) not in orders or len(orders) > 1


def test_empty_passage_gets_a_negative_and_share_option():
    convs = build_conversations([EXAMPLES[2]], BuildOptions(empty_negatives=2, seed=0))
    assert len(convs[0].turns) == 2 and convs[0].n_negative == 2

    def share(s):
        return sum(c.n_negative for c in build_conversations([EXAMPLES[0]] * 200, BuildOptions(negative_share=s)))

    assert share(0.0) == 0 < share(0.3) < share(0.5)


def test_definition_variant_and_dataset_template():
    defs = {"person": "individuals, real or fictional."}
    conv = build_conversations([EXAMPLES[0]], BuildOptions(definitions=defs, definition_mode="definition",
                                                            negative_share=0.0, dataset_prompt=True))[0]
    asked = {t for t, _ in conv.turns}
    assert "individuals, real or fictional" in asked
    assert question(asked_text("person", defs["person"], "definition")) == question(
        "person", defs["person"], "definition")
    text, _ = conv.render(EOS)
    assert "Dataset: conll Text: Barack" in text
    assert "What describes individuals, real or fictional in the text?" in text


def test_uniner_json_format_and_jsonl_roundtrip(tmp_path):
    convs = build_conversations(EXAMPLES, BuildOptions(seed=2))
    items = to_uniner_json(convs)
    turns = items[0]["conversations"]
    assert turns[0] == {"from": "human", "value": "Text: " + EXAMPLES[0].text}
    assert turns[1] == {"from": "gpt", "value": "I've read this text."}
    assert turns[2]["value"].startswith("What describes ") and turns[2]["value"].endswith(" in the text?")
    assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
    write_jsonl(convs, tmp_path / "c.jsonl")
    assert read_jsonl(tmp_path / "c.jsonl") == convs


def test_chunking_keeps_entities_whole(tokenizer):
    words = []
    for i in range(300):
        words.append(f"Sentence {i} mentions New York City.")
    text = " ".join(words)
    ents = []
    pos = 0
    while (pos := text.find("New York City", pos)) >= 0:
        ents.append(Entity(pos, pos + 13, "city"))
        pos += 13
    ex = AnnotatedText(text, ents, ["city"], "long")

    def offsets(t):
        return tokenizer(t, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]

    pieces = chunk_example(ex, offsets, 256)
    assert len(pieces) > 1
    assert sum(len(p.entities) for p in pieces) == len(ents)
    for p in pieces:
        assert len(offsets(p.text)) <= 256
        assert all(p.text[e.start:e.end] == "New York City" for e in p.entities)
        assert p.text.endswith(".")


# ---------------------------------------------------------------- loss mask


def test_loss_mask_token_by_token(tokenizer):
    from training.features import IGNORE, tokenize_conversations

    conv = Conversation("Barack Obama visited Paris.", [("person", '["Barack Obama"]'), ("date", "[]")])
    feats, stats = tokenize_conversations([conv], tokenizer, EOS)
    f = feats[0]
    eos_id = tokenizer.convert_tokens_to_ids(EOS)
    assert f.input_ids[0] != tokenizer.bos_token_id or tokenizer.bos_token_id is None
    # the loss-carrying stretches, decoded
    stretches, cur = [], []
    for tid, lab in zip(f.input_ids, f.labels):
        if lab == IGNORE:
            if cur:
                stretches.append(cur)
                cur = []
        else:
            assert lab == tid
            cur.append(tid)
    if cur:
        stretches.append(cur)
    assert [tokenizer.decode(s) for s in stretches] == [' ["Barack Obama"]' + EOS, " []" + EOS]
    for s in stretches:
        assert s[-1] == eos_id
    # the acknowledgement's EOS and every user/system token carry no loss
    n_eos = f.input_ids.count(eos_id)
    assert n_eos == 3 and sum(1 for t, l in zip(f.input_ids, f.labels) if t == eos_id and l != IGNORE) == 2
    assert stats.straddling == 0 and stats.loss_tokens == sum(len(s) for s in stretches)


def test_type_last_layout_trains_the_answer_after_the_type(tokenizer):
    """`--layout type-last`: the type stands in the assistant's turn, and only the answer after it carries loss."""
    from training.features import IGNORE, tokenize_conversations

    conv = Conversation("Barack Obama visited Paris.", [("person", '["Barack Obama"]'), ("date", "[]")])
    (f,), stats = tokenize_conversations([conv], tokenizer, EOS, layout="type-last")
    assert tokenizer.decode(f.input_ids).endswith(f"this type in the text? ASSISTANT: date: []{EOS}")
    loss = [t for t, lab in zip(f.input_ids, f.labels) if lab != IGNORE]
    assert tokenizer.decode(loss) == ' ["Barack Obama"]' + EOS + " []" + EOS and stats.straddling == 0


def test_overlong_conversations_are_split_or_dropped_and_counted(tokenizer):
    from training.features import tokenize_conversations

    passage = " ".join(["alpha beta gamma"] * 30)
    turns = [(f"type {i}", "[]") for i in range(40)]
    conv = Conversation(passage, turns)
    def n_tokens(c):
        return len(tokenizer(c.render(EOS)[0], add_special_tokens=False)["input_ids"])

    full, one = n_tokens(conv), n_tokens(Conversation(passage, turns[:1]))
    limit = one + (full - one) // 3  # room for about a third of the turns
    feats, stats = tokenize_conversations([conv], tokenizer, EOS, max_length=limit)
    assert stats.split == 1 and len(feats) >= 3 and all(len(f) <= limit for f in feats)
    assert sum(f.n_turns for f in feats) == 40
    feats, stats = tokenize_conversations([conv], tokenizer, EOS, max_length=20)
    assert feats == [] and stats.dropped == 1


# ---------------------------------------------------------------- tiny training run


def _tiny_model(folder: Path, tokenizer) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         eos_token_id=tokenizer.convert_tokens_to_ids(EOS), pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=None)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_tiny_training_run_writes_adapter_and_resumes(tmp_path, tokenizer):
    from training import train

    base = _tiny_model(tmp_path / "base", tokenizer)
    convs = build_conversations(EXAMPLES * 6, BuildOptions(seed=0))
    data = tmp_path / "mix.jsonl"
    write_jsonl(convs, data)
    (tmp_path / "mix.stats.json").write_text(json.dumps({"conversations": len(convs), "sources": {
        "conll": {"conversations": 12, "turns": 20, "negatives": 4, "types": 2, "licence": "test"}}}))
    out = tmp_path / "run"
    common = ["--data", str(data), "--base", str(base), "--output", str(out), "--batch-tokens", "400",
              "--lora-r", "4", "--lora-alpha", "8", "--lr", "1e-3", "--save-steps", "2", "--logging-steps", "1",
              "--threads", "1"]
    train.main(common + ["--max-steps", "3"])
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-3").is_dir()
    final = out / "final"
    cfg = json.loads((final / "adapter_config.json").read_text())
    assert set(cfg["target_modules"]) == set(train.LORA_TARGETS)
    assert (final / "adapter_model.safetensors").exists()
    card = (final / "README.md").read_text()
    assert "CC BY-NC 4.0" in card and "| conll |" in card and "lora_r | 4" in card
    assert "USER: What describes {type} in the text? ASSISTANT:`" in card and not (final / "template.json").exists()
    assert "non-padding tokens/s: ? " not in card  # the rate each log line printed reaches the card

    from safetensors import safe_open

    with safe_open(str(final / "adapter_model.safetensors"), "pt") as fh:
        dtypes = {str(fh.get_tensor(k).dtype) for k in fh.keys()}
    assert dtypes == {"torch.bfloat16"}

    # resume: continue from checkpoint-3 to step 5, exported elsewhere
    export = tmp_path / "export"
    train.main(common + ["--max-steps", "5", "--resume", "--export", str(export)])
    state = json.loads((out / "checkpoint-5" / "trainer_state.json").read_text())
    assert state["global_step"] == 5
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps == [1, 2, 3, 4, 5]  # steps 1-3 from the first run, not redone
    assert (export / "adapter_model.safetensors").exists() and (export / "README.md").exists()

    # the adapter loads on top of the base with peft and merges
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(export))
    model.merge_and_unload()


def test_model_layers_and_training_import_without_spacy():
    """The trainer and the HF backend run on a bare GPU box, where spaCy is not installed."""
    import subprocess

    code = ("import sys; sys.modules['spacy'] = None\n"
            "import uniner_spacy, uniner_spacy.backends.hf, training.train\n"
            "assert not hasattr(uniner_spacy, 'UniNER')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_export_keeps_the_cards_retrain_history(tmp_path, capsys):
    """A run's card replaces the shipped one, except its hand-written `## Retrain` history."""
    from training.train import export

    src, dst = tmp_path / "run", tmp_path / "shipped"
    src.mkdir()
    dst.mkdir()
    (src / "adapter_config.json").write_text("{}")
    (src / "README.md").write_text("# card\n\nnew figures\n\n## Retrain\n\none line\n")
    (dst / "README.md").write_text("# card\n\nold figures\n\n## Retrain\n\nphases 1-5 ...\n")
    (dst / "calibration.json").write_text('{"xs": [], "ys": []}')  # the previous adapter's
    export(src, dst)
    assert not (dst / "calibration.json").exists()
    card = (dst / "README.md").read_text()
    assert "new figures" in card and "old figures" not in card
    assert card.endswith("## Retrain\n\nphases 1-5 ...\n")
    assert (dst / "adapter_config.json").exists()
    # the layout file goes with the adapter it describes, and an adapter without one removes the old
    (src / "template.json").write_text('{"layout": "type-last"}')
    export(src, dst)
    assert (dst / "template.json").exists()
    (src / "template.json").unlink()
    export(src, dst)
    assert not (dst / "template.json").exists()
    # replaying the export of the very adapter the calibration was fitted to keeps that calibration
    (src / "adapter_model.safetensors").write_bytes(b"weights")
    export(src, dst)
    (dst / "calibration.json").write_text('{"xs": [], "ys": []}')
    export(src, dst)
    assert (dst / "calibration.json").exists()
    (src / "adapter_model.safetensors").write_bytes(b"other weights")
    export(src, dst)
    assert not (dst / "calibration.json").exists()
    # the removal names the refit of this student: the Gemma one has its own target
    (dst / "calibration.json").write_text('{"xs": [], "ys": []}')
    capsys.readouterr()
    (src / "adapter_model.safetensors").write_bytes(b"Gemma weights")
    export(src, dst, "embedded-gemma")
    assert "`make calibration-gemma`" in capsys.readouterr().out


def test_hard_negatives_ask_the_types_nearest_the_passages_own():
    text = "Marie Curie studied radium."
    labels = ["scientist", "politician", "athlete", "vehicle", "food"]
    ex = AnnotatedText(text, [Entity(0, 11, "scientist")], labels, "x")
    near = {"scientist": {"politician": 0.8, "athlete": 0.6, "vehicle": 0.1}}
    opts = BuildOptions(negative_share=0.5, seed=0, hard_negatives=1.0, confusable=near)
    for conv in build_conversations([ex] * 20, opts):
        assert [t for t, a in conv.turns if a == "[]"] == ["politician"]  # one negative a positive, the nearest
    easy = build_conversations([ex] * 200, BuildOptions(negative_share=0.5, seed=0))
    assert len({t for c in easy for t, a in c.turns if a == "[]"}) > 1  # by frequency: any of them



def test_confusable_types_rank_each_label_set_among_itself():
    """Every pair of types sharing a label set, never across sets: a passage's hard negatives come from
    its own set, which a global nearest-k list mostly missed."""
    from training.conversations import confusable_types

    near = confusable_types([["scientist", "politician", "vehicle"], ["person", "location"],
                             ["vehicle", "politician", "scientist"], ["lonely"]])
    assert set(near) == {"scientist", "politician", "vehicle", "person", "location"}
    assert set(near["scientist"]) == {"politician", "vehicle"} and set(near["person"]) == {"location"}
    assert near["scientist"]["politician"] > near["scientist"]["vehicle"]
    assert near["politician"]["scientist"] == near["scientist"]["politician"]


def test_silver_passages_label_the_types_gold_sets_rarely_do():
    """en_core_web_sm over train passages of the other sets (never Pile-NER's): dates, money and the
    like, with every silver type as the label set; persons, organisations and places are left out."""
    from training.mixture import SILVER, SILVER_TYPES, spacy_silver

    text = "Apple paid $5 million to John Smith in London on Monday."
    by_set = {"conll2003": [_ex(text, [("Apple", "organization")], ["organization"], "conll2003")],
              "pile_ner_slimer": [_ex("Pile text on 3 May.", [], ["x"], "pile_ner_slimer")]}
    [silver] = spacy_silver(by_set, 5, seed=0)
    assert silver.source == SILVER and silver.text == text
    assert silver.labels == sorted(SILVER_TYPES.values())
    found = {(text[e.start : e.end], e.label) for e in silver.entities}
    assert ("$5 million", "money") in found and ("Monday", "date") in found
    assert not {label for _, label in found} & {"person", "organization", "location"}

def test_pipeline_silver_keeps_only_complete_and_sure_passages(tmp_path):
    """`uniner-spacy annotate` output as a mixture source: a failed row is no "no entities", and a
    passage with a dropped candidate no entity covers is not exhaustive, so both are left out."""
    import spacy
    from conftest import TINY_FACTS, canned
    from typer.testing import CliRunner

    from training.mixture import PIPELINE_SILVER, pipeline_silver
    from uniner_spacy.cli.app import app

    texts = sorted({p for p, _ in TINY_FACTS})
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": ["person", "organization", "location"], "backend": canned()})
    nlp.config.to_disk(tmp_path / "config.cfg")
    src, out = tmp_path / "in.txt", tmp_path / "out.jsonl"
    src.write_text("\n".join(texts + [texts[0]]) + "\n")
    result = CliRunner().invoke(app, ["annotate", str(src), str(out), "--config", str(tmp_path / "config.cfg")])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    rows[1].update({"_status": "failed", "ents": [], "spans": []})
    rows[2]["spans"].append({"start": 12, "end": 17, "text": "works", "label": "person", "score": 0.3})
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    [silver] = pipeline_silver([out])
    assert silver.source == PIPELINE_SILVER and silver.text == texts[0]
    assert silver.labels == ["person", "organization", "location"]
    assert {(silver.text[e.start : e.end], e.label) for e in silver.entities} == {
        ("Alice Smith", "person"), ("Acme Corp", "organization"), ("Berlin", "location")}
    (tmp_path / "out.jsonl.run.json").unlink()
    with pytest.raises(SystemExit, match="no run record"):
        pipeline_silver([out])


def test_pipeline_silver_agrees_with_gold_where_a_set_labels_the_text():
    """The gold says what kind of thing a span is, the pipeline the finer type; a passage that
    disagrees anywhere is dropped whole, since a dropped entity would be taught as `[]`; one that
    agrees asks only the refined labels, since the gold set teaches its own."""
    from training.mixture import agree_with_gold, parse_mapping

    text = "Obama met Smith in Paris."
    labels = ["politician", "person", "city", "organization"]
    gold = {text: _ex(text, [("Obama", "person"), ("Smith", "person"), ("Paris", "location")],
                      ["person", "location", "organization"], "conll2003")}
    coarse = parse_mapping("politician=person, city=location")
    good = _ex(text, [("Obama", "politician"), ("Smith", "person"), ("Paris", "city")], labels, "s")
    wrong_kind = _ex(text, [("Obama", "politician"), ("Smith", "organization"), ("Paris", "city")], labels, "s")
    missed = _ex(text, [("Obama", "politician"), ("Paris", "city")], labels, "s")
    no_gold = _ex("Elsewhere, Bob.", [("Bob", "person")], labels, "s")
    kept = agree_with_gold([good, wrong_kind, missed, no_gold], gold, coarse)
    assert kept[1] == no_gold and kept[0].text == text and kept[0].labels == ["politician", "city"]
    assert [(text[e.start : e.end], e.label) for e in kept[0].entities] == [("Obama", "politician"), ("Paris", "city")]
    assert len(kept) == 2
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_mapping("politician")


def test_turns_may_ask_another_wording_with_the_same_answer():
    from uniner_spacy.evaluation.labels import wordings

    assert wordings("organization") == ["organisation", "organizations", "Organization"]
    assert wordings("musical_artist") == ["musical artist", "musical artists", "Musical artist"]
    assert wordings("else") == ["Else"]
    ex = EXAMPLES[0]
    convs = build_conversations([ex] * 50, BuildOptions(negative_share=0.0, seed=2, wording_share=0.5))
    asked = Counter(t for c in convs for t, _ in c.turns)
    assert asked["person"] and set(asked) - {"person", "location"}  # some turns reworded
    for conv in convs:
        for (t, answer), label in zip(conv.turns, conv.types):
            assert t == label or t in wordings(label)
            assert answer == dict(build_conversations([ex], BuildOptions(negative_share=0.0, seed=2))[0].turns)[label]
    plain = build_conversations([ex] * 5, BuildOptions(seed=7))
    assert [c.turns for c in plain] == [c.turns for c in build_conversations([ex] * 5, BuildOptions(seed=7))]


def test_label_set_prompt_only_where_the_answers_are_exclusive(tmp_path):
    """A conversation shows the types it asks before the passage; one whose answers share a mention
    (Pile-NER's `person` and `writer`) would teach the opposite of what the prompt means, so it shows none."""
    exclusive = EXAMPLES[0]
    shared = _ex("Tolkien wrote.", [("Tolkien", "person"), ("Tolkien", "writer")], ["person", "writer"], "pile")
    opts = BuildOptions(seed=3, label_set_share=1.0)
    shown, unshown = build_conversations([exclusive, shared], opts)
    assert shown.label_set == [t for t, _ in shown.turns] and sorted(shown.label_set) == sorted(shown.types)
    assert shown.render(EOS)[0].startswith(
        "A virtual assistant answers questions from a user based on the provided text. USER: Entity types: "
        + ", ".join(shown.label_set) + ". Text: Barack Obama")
    assert unshown.label_set == [] and "Entity types" not in unshown.render(EOS)[0]
    # off by default, and then the lossless file has no such field: earlier mixtures rebuild byte for byte
    plain = build_conversations([exclusive], BuildOptions(seed=3))
    write_jsonl(plain + [shown], tmp_path / "m.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert "label_set" not in rows[0] and rows[1]["label_set"] == shown.label_set
    assert read_jsonl(tmp_path / "m.jsonl") == plain + [shown]
    asked_all = build_conversations([exclusive], BuildOptions(seed=3, ask_all=True))[0]
    assert sorted(asked_all.types) == sorted(exclusive.labels)


def test_regrouped_passages_ask_a_generic_type_beside_its_fine_ones():
    """A fine type not shown is answered under the generic it refines; one shown keeps its mentions."""
    from training.mixture import MULTICONER_GROUPS, regrouped

    text = "Obama met Messi and Bach in Rome."
    ex = _ex(text, [("Obama", "politician"), ("Messi", "athlete"), ("Bach", "other person"),
                    ("Rome", "human settlement")],
             ["politician", "athlete", "other person", "human settlement", "disease"], "multiconer2_en")
    out = regrouped([ex] * 40, 40, seed=1)
    assert len(out) == 40
    for grouped in out:
        assert {"person", "location"} <= set(grouped.labels) and "disease" not in grouped.labels
        assert not any(label.startswith("other ") for label in grouped.labels)
        got = {text[e.start : e.end]: e.label for e in grouped.entities}
        assert got["Bach"] == "person"
        for name, fine in (("Obama", "politician"), ("Messi", "athlete"), ("Rome", "human settlement")):
            assert got[name] == (fine if fine in grouped.labels else
                                 next(g for g, fines in MULTICONER_GROUPS.items() if fine in fines))
    assert any(e.label == "politician" for g in out for e in g.entities)
    assert any(text[e.start : e.end] == "Obama" and e.label == "person" for g in out for e in g.entities)
