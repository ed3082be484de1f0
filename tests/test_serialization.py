"""A saved pipeline carries its data: save, delete the originals, move the folder, load, same output."""
import json
import shutil

import pytest
import spacy

TEXT = "Alice Smith works for Acme Corp in Berlin."
RULES = """
version: 1
filters:
  block: ["acme corp"]
gazetteers:
  - label: location
    file: places.txt
    score: 0.42
"""


def lora_adapter(model_dir, path):
    """A LoRA adapter for the tiny model (identity at init, which is enough to show where it loads from)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])).save_pretrained(path)


def outputs(doc):
    group = doc.spans["uniner"]
    return ([(e.text, e.label_, round(e._.uniner_score, 6)) for e in doc.ents],
            [(s.text, s.label_, round(x, 6)) for s, x in zip(group, group.attrs["scores"])])


def test_saved_pipeline_moves_with_calibration_rules_and_adapter(tiny_model_dir, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    lora_adapter(tiny_model_dir, src / "adapter")
    (src / "places.txt").write_text("Berlin\n")
    (src / "rules.yaml").write_text(RULES)
    (src / "calibration.json").write_text(json.dumps({"xs": [0.0, 1.0], "ys": [0.1, 0.8]}))
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={
        "labels": ["person", "organization", "location"],
        "backend": {"@misc": "uniner.HF.v1", "model": str(tiny_model_dir), "adapter": str(src / "adapter"),
                    "max_new_tokens": 24},
        "calibration": {"@misc": "uniner.Calibration.v1", "path": str(src / "calibration.json")},
        "stages": {"rules": {"@misc": "uniner.Rules.v1", "path": str(src / "rules.yaml")}},
    })
    before = outputs(nlp(TEXT))
    ents = [(t, l) for t, l, _ in before[0]]
    assert ("Alice Smith", "person") in ents and ("Berlin", "location") in ents
    assert ("Acme Corp", "organization") not in ents  # the rule set's block list applied
    assert all(0.1 <= s <= 0.8 for _, _, s in before[1] if s != 0.42)  # calibrated

    nlp.to_disk(tmp_path / "a")
    saved = tmp_path / "a" / "uniner"
    assert (saved / "calibration.json").exists() and (saved / "stages" / "rules" / "rules.json").exists()
    assert (saved / "backend" / "adapter" / "adapter_model.safetensors").exists()
    shutil.rmtree(src)  # the originals are gone: only the saved folder holds the data now
    shutil.move(str(tmp_path / "a"), str(tmp_path / "b"))

    loaded = spacy.load(tmp_path / "b")
    assert outputs(loaded(TEXT)) == before
    assert loaded.get_pipe("uniner").backend.adapter == str(tmp_path / "b" / "uniner" / "backend" / "adapter")


def test_shipped_parts_are_named_not_copied(tmp_path):
    """The embedded adapter and a shipped rule set need no copy of their weights; a canned backend none."""
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={
        "labels": ["person"], "stages": {"rules": {"@misc": "uniner.Rules.v1", "path": "default"}},
        "backend": {"@misc": "uniner.HF.v1", "model": "embedded"}})
    nlp.to_disk(tmp_path / "p")
    info = json.loads((tmp_path / "p" / "uniner" / "backend" / "backend.json").read_text())
    assert info == {"model": "embedded", "adapter": None, "embedded_adapter": True}
    assert not (tmp_path / "p" / "uniner" / "backend" / "adapter").exists()
    assert (tmp_path / "p" / "uniner" / "stages" / "rules" / "rules.json").exists()


def test_a_missing_rules_file_is_a_clear_error_at_first_use(tmp_path):
    from uniner_spacy.errors import RulesError

    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={
        "labels": ["person"], "backend": {"@misc": "uniner.Canned.v1", "answers": {"person": ["Alice"]}},
        "stages": {"rules": {"@misc": "uniner.Rules.v1", "path": str(tmp_path / "nowhere.yaml")}}})
    with pytest.raises(RulesError, match="nowhere.yaml"):
        nlp("Alice came.")
    with pytest.raises(RulesError):  # a typo in a shipped set's name is said at once
        spacy.blank("en").add_pipe("uniner", config={
            "labels": ["person"], "stages": {"rules": {"@misc": "uniner.Rules.v1", "path": "defualt"}}})


def test_bytes_carry_labels_and_calibration():
    from uniner_spacy.pipeline.calibration import Calibrator

    def make():
        nlp = spacy.blank("en")
        nlp.add_pipe("uniner", config={"labels": ["person"], "stages": {}, "calibration": None,
                                       "backend": {"@misc": "uniner.Canned.v1", "answers": {"person": ["Alice"]}}})
        return nlp

    nlp = make()
    nlp.get_pipe("uniner").add_label("city")
    nlp.get_pipe("uniner").calibration = Calibrator([0.0, 1.0], [0.2, 0.3])
    again = make().from_bytes(nlp.to_bytes())
    pipe = again.get_pipe("uniner")
    assert pipe.labels == ("person", "city")
    assert pipe.calibration(1.0) == pytest.approx(0.3)


def test_the_answer_cache_saves_the_backend_it_wraps(tmp_path):
    """`uniner.Cached.v1` hands to_disk / from_disk to the wrapped backend; the cache file stays put."""
    from uniner_spacy.backends.cache import CachedBackend
    from uniner_spacy.backends.hf.backend import HFBackend

    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    cached = CachedBackend(HFBackend("some/model", adapter=str(tmp_path / "adapter")), tmp_path / "c.sqlite")
    cached.to_disk(tmp_path / "saved")  # nothing is loaded: the HF backend loads lazily
    assert (tmp_path / "saved" / "adapter" / "adapter_config.json").exists()
    again = CachedBackend(HFBackend("some/model", adapter="/gone"), tmp_path / "c.sqlite").from_disk(tmp_path / "saved")
    assert again.backend.adapter == str(tmp_path / "saved" / "adapter")


def test_a_saved_adapter_keeps_its_layout(tmp_path):
    """The adapter's `template.json` travels with it, and the loaded backend asks in that layout."""
    from uniner_spacy.backends.hf.backend import HFBackend
    from uniner_spacy.questions.prompts import write_layout

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")  # what makes a folder an adapter (PEFT's file)
    write_layout(adapter, "type-last")
    HFBackend("embedded-base", adapter=str(adapter)).to_disk(tmp_path / "saved")
    shutil.rmtree(adapter)
    loaded = HFBackend("embedded-base", adapter=str(adapter)).from_disk(tmp_path / "saved")
    assert loaded.adapter == str(tmp_path / "saved" / "adapter") and loaded.prompter.layout == "type-last"
