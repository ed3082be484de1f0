"""The distillation project: project.yml, the step scripts on the sample corpus, and the smoke workflow."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training import convert, corpus, stats
from training.conversations import read_jsonl
from uniner_spacy.questions.prompts import ACK

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "training" / "sample_corpus.jsonl"


def test_project_yml_is_valid_and_declares_every_step():
    from weasel.util import load_project_config

    config = load_project_config(REPO)  # validates against weasel's schema (exits if invalid)
    commands = {c["name"]: c for c in config["commands"]}
    for workflow, n in (("all", 7), ("smoke", 7), ("distill-spacy", 2), ("distill-spacy-smoke", 2)):
        steps = config["workflows"][workflow]
        assert len(steps) == n and all(s in commands for s in steps)
        for step in steps:
            assert commands[step].get("deps") and commands[step].get("outputs"), step


def test_sample_corpus_is_ours_and_varied():
    rows = [json.loads(x) for x in SAMPLE.read_text().splitlines()]
    assert len(rows) >= 40
    assert {r["source"] for r in rows} >= {"news", "science", "sport", "music", "tech", "medicine"}


def test_corpus_split_dedupe_sample(tmp_path):
    doc = " ".join(f"Sentence number {i} mentions Berlin and the Acme Corporation." for i in range(25))
    (tmp_path / "long.txt").write_text(doc + "\n\n" + doc + "\n\nShort.\n")  # a duplicate document
    (tmp_path / "rows.jsonl").write_text(json.dumps({"body": "Ada Lovelace wrote the first program."}) + "\n{bad\n")
    passages, info = corpus.build([tmp_path / "long.txt", tmp_path / "rows.jsonl"], n=0, max_tokens=64,
                                  seed=0, tokenizer="embedded", text_field="body", log=lambda m: None)
    assert info["documents"] == 4  # three blocks of the text file, one JSONL row (`--text-field body`)
    assert info["duplicates"] >= 1 and info["too_short"] == 1
    assert max(p["n_tokens"] for p in passages) <= 64
    assert all(p["text"].endswith(".") for p in passages)  # cut on sentence boundaries
    again, _ = corpus.build([tmp_path / "long.txt"], n=3, max_tokens=64, seed=1, tokenizer="embedded",
                            log=lambda m: None)
    same, _ = corpus.build([tmp_path / "long.txt"], n=3, max_tokens=64, seed=1, tokenizer="embedded",
                           log=lambda m: None)
    assert len(again) == 3 and again == same


def _annotations(path: Path) -> None:
    rows = [
        {"id": "a", "text": "Alice met Bob in Paris.", "error": None, "entities": [
            {"mention": "Alice", "type": "person", "spans": [[0, 5]]},
            {"mention": "Bob", "type": "person", "spans": [[10, 13]]},
            {"mention": "Paris", "type": "city", "spans": [[17, 22]]}]},
        {"id": "b", "text": "Rome is old.", "error": None, "entities": [
            {"mention": "Rome", "type": "city", "spans": [[0, 4]]}]},
        {"id": "c", "text": "Lost passage.", "error": "APITimeoutError: timed out", "entities": []},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_convert_and_stats(tmp_path):
    ann = tmp_path / "ann.jsonl"
    _annotations(ann)
    info = convert.main(["--annotations", str(ann), "--out", str(tmp_path / "conv.jsonl"), "--uniner-json",
                         str(tmp_path / "conv.json"), "--negative-types", "organization", "--negative-share", "0.5"])
    convs = read_jsonl(tmp_path / "conv.jsonl")
    assert info["conversations"] == 2 and info["examples"] == 2  # the failed passage is skipped
    first = next(c for c in convs if c.passage.startswith("Alice"))
    answers = dict(first.turns)
    assert answers["person"] == '["Alice", "Bob"]' and answers["city"] == '["Paris"]'
    official = json.loads((tmp_path / "conv.json").read_text())
    assert official[0]["conversations"][1] == {"from": "gpt", "value": ACK}
    out = stats.main([str(ann), "--out", str(tmp_path / "s.md"), "--json", str(tmp_path / "s.json")])
    assert out["types"] == 2 and out["mentions"] == 4
    assert [b["types"] for b in out["buckets"]] == [1, 0, 1]
    assert "| person | 2 |" in (tmp_path / "s.md").read_text()


def test_convert_reads_published_pile_ner_and_supervised(tmp_path):
    pile = [{"id": "0", "conversations": [
        {"from": "human", "value": "Text: Tim Cook runs Apple."}, {"from": "gpt", "value": ACK},
        {"from": "human", "value": "What describes person in the text?"}, {"from": "gpt", "value": '["Tim Cook"]'},
        {"from": "human", "value": "What describes company in the text?"}, {"from": "gpt", "value": '["Apple"]'}]}]
    (tmp_path / "pile.json").write_text(json.dumps(pile))
    info = convert.main(["--pile-ner", str(tmp_path / "pile.json"), "--data",
                         str(REPO / "training" / "sample_eval" / "dev.json"), "--limit", "3", "--dataset-prompt",
                         "--out", str(tmp_path / "c.jsonl")])
    convs = read_jsonl(tmp_path / "c.jsonl")
    assert info["conversations"] == 4
    sup = [c for c in convs if c.dataset_prompt]
    assert len(sup) == 3 and sup[0].dataset == "sample_eval"
    assert dict(convs[0].turns)["company"] == '["Apple"]'


@pytest.mark.slow
def test_spacy_project_run_smoke(tmp_path):
    """The smoke workflow end to end: corpus → local teacher → conversations → 2 LoRA steps → package → eval."""
    work = tmp_path / "project"
    work.mkdir()
    for name in ("project.yml",):
        shutil.copy2(REPO / name, work / name)
    shutil.copytree(REPO / "training", work / "training", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(work)}
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "spacy", "project", "run", "smoke", str(work)], env=env,
                          cwd=work, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = work / ".train" / "distill-smoke"
    ann = json.loads((out / "annotations.stats.json").read_text())
    assert ann["passages"] == 3 and ann["failed"] == 0
    assert (out / "package" / "uniner" / "backend" / "adapter" / "adapter_model.safetensors").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics
    print(f"smoke workflow: {time.time() - started:.0f} s; annotations {ann['mentions_kept']} kept, "
          f"{ann['mentions_dropped']} dropped")
    # a second run skips every finished step
    again = subprocess.run([sys.executable, "-m", "spacy", "project", "run", "smoke", str(work)], env=env,
                           cwd=work, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stdout.count("Skipping") >= 7, again.stdout[-2000:]


@pytest.mark.slow
def test_spacy_project_run_distill_spacy_smoke(tmp_path):
    """The LLM teaching a spaCy pipeline, end to end with the embedded teacher: raw text → annotate →
    silver → spacy train → a packaged pipeline, scored on the sample dev set; the last line of
    `uniner-spacy distill`'s output is that pipeline, and it loads in a clean process."""
    work = tmp_path / "project"
    work.mkdir()
    shutil.copy2(REPO / "project.yml", work / "project.yml")
    shutil.copytree(REPO / "training", work / "training", ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(work)}
    proc = subprocess.run([sys.executable, "-m", "spacy", "project", "run", "distill-spacy-smoke", str(work)],
                          env=env, cwd=work, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = work / ".train" / "distill-spacy-smoke"
    assert proc.stdout.strip().splitlines()[-1].endswith(str(Path(".train") / "distill-spacy-smoke" / "pipeline"))
    silver = json.loads((out / "silver.json").read_text())
    assert silver["rows"] == 12 and silver["not_complete"] == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_label"]) == {"person", "organization", "location"}
    from test_distill_spacy import load_without_uniner

    assert load_without_uniner(out / "pipeline", "Ingrid Solberg joined Fjordlight in Oslo.")["pipes"] == ["tok2vec",
                                                                                                     "ner"]
