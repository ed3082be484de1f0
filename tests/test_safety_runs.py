"""Issue 36, "output that was good is destroyed": each test is one finding, run as a user would (the
CLI) on the canned backend; each failed on the code before the fix.

A complete output is never replaced by a worse one, input and output never share a path, two runs
never write one output, a row that can never succeed says so, and a label is data, never config text."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from conftest import canned
from spacy.tokens import DocBin
from test_faults_batch import LABELS, annotate, config, corpus, rows, timeless
from test_faults_batch import asked as asked  # noqa: F401 (the fixture that counts the questions asked)
from typer.testing import CliRunner

from uniner_spacy.backends.canned import CannedBackend
from uniner_spacy.cli.app import app
from uniner_spacy.errors import ConfigError
from uniner_spacy.runs import record_path

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def docbin_texts(path):
    return [d.text for d in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab)]


def down(tmp_path):
    """A config whose backend fails every question (an outage), beside the good one."""
    return config(tmp_path, canned(errors=LABELS), name="down.cfg")


# ---------------------------------------------------------------- a rerun never destroys a good output


@pytest.mark.parametrize("suffix", [".spacy", ".html"])
def test_a_failed_rerun_keeps_the_complete_output(tmp_path, suffix):
    src, out = corpus(tmp_path, 6), tmp_path / f"out{suffix}"
    assert annotate(src, out, config(tmp_path, canned())).exit_code == 0
    good = out.read_bytes()
    result = annotate(src, out, down(tmp_path), "--max-failed-batches", "0")
    assert result.exit_code == 1, result.output
    assert out.read_bytes() == good  # was: an empty DocBin / page in its place
    assert f"{out} is kept as it was" in result.output
    if suffix == ".spacy":
        assert len(docbin_texts(out)) == 6


def test_an_interrupted_rerun_keeps_the_output_and_its_failed_rows(tmp_path, monkeypatch):
    src, out = corpus(tmp_path, 4, poison=1), tmp_path / "out.spacy"
    cfg = config(tmp_path, canned())
    assert annotate(src, out, cfg).exit_code == 1  # one poison document: 3 in the DocBin, 1 failed row
    failed = tmp_path / "out.spacy.failed.jsonl"
    before = (out.read_bytes(), failed.read_bytes())

    def interrupted(self, queries, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(CannedBackend, "__call__", interrupted)
    result = annotate(src, out, cfg)
    assert result.exit_code == 1 and "interrupted" in result.output
    assert (out.read_bytes(), failed.read_bytes()) == before  # was: the failed rows deleted at the start


@pytest.mark.parametrize("suffix", [".spacy", ".html"])
def test_a_write_that_fails_half_way_leaves_the_old_file(tmp_path, monkeypatch, suffix):
    src, out = corpus(tmp_path, 3), tmp_path / f"out{suffix}"
    cfg = config(tmp_path, canned())
    assert annotate(src, out, cfg).exit_code == 0
    good = out.read_bytes()
    if suffix == ".spacy":
        def broken(self):
            raise OSError("disk full")

        monkeypatch.setattr(DocBin, "to_bytes", broken)
    else:  # a page UTF-8 cannot hold fails while it is written
        from spacy import displacy

        monkeypatch.setattr(displacy, "render", lambda *args, **kwargs: "<html>\ud800")
    result = annotate(src, out, cfg)
    assert result.exit_code != 0
    assert out.read_bytes() == good  # was: truncated
    assert not list(tmp_path.glob("out*.tmp"))


# ---------------------------------------------------------------- input and output


@pytest.mark.parametrize("name", ["page.html", "in.jsonl", "in.txt"])
def test_input_and_output_the_same_file_is_refused_without_a_destructive_hint(tmp_path, name):
    src = tmp_path / name
    src.write_text(json.dumps({"text": "Alice Smith works for Acme Corp in Berlin."}) + "\n")
    before = src.read_bytes()
    cfg = config(tmp_path, canned())
    out = tmp_path / "sub" / ".." / name if name != "in.txt" else src  # another spelling of the same path
    result = annotate(src, out, cfg)
    assert result.exit_code == 2, result.output
    assert "same file" in result.output and "--no-resume" not in result.output
    assert src.read_bytes() == before  # was: page.html overwritten, exit 0


def test_a_run_file_that_is_the_input_is_refused(tmp_path):
    """The run record and failed rows are outputs too: none of them may be the input."""
    out = tmp_path / "out.spacy"
    src = corpus(tmp_path, 2, name="out.spacy.failed.jsonl")
    before = src.read_bytes()
    result = annotate(src, out, config(tmp_path, canned(errors=LABELS)), "--max-failed-batches", "0")
    assert result.exit_code == 2 and "same file" in result.output
    assert src.read_bytes() == before


def test_no_resume_replaces_the_old_output_only_when_the_new_run_completes(tmp_path):
    src, out = corpus(tmp_path, 4), tmp_path / "out.jsonl"
    cfg = config(tmp_path, canned())
    assert annotate(src, out, cfg).exit_code == 0
    good = out.read_bytes()
    result = annotate(src, out, down(tmp_path), "--no-resume", "--max-failed-batches", "0")
    assert result.exit_code == 1, result.output
    assert out.read_bytes() == good  # was: 4 good rows became 4 failed ones
    assert json.loads(record_path(out).read_text())["config"]  # its run record is the old run's too
    pending = tmp_path / "out.pending.jsonl"
    assert [r["_status"] for r in rows(pending)] == ["failed"] * 4
    assert f"{out} is kept as it was" in result.output and str(pending) in result.output
    # the same command once the backend is back: the pending rows are retried, then swapped in
    again = annotate(src, out, cfg, "--no-resume")
    assert again.exit_code == 0, again.output
    assert "Replaced" in again.output and not pending.exists()
    baseline = tmp_path / "baseline.jsonl"
    assert annotate(src, baseline, cfg).exit_code == 0
    assert timeless(out) == timeless(baseline)


def test_a_resume_refused_names_no_destructive_flag(tmp_path):
    src, out = corpus(tmp_path, 3), tmp_path / "out.jsonl"
    assert annotate(src, out, config(tmp_path, canned())).exit_code == 0
    result = annotate(corpus(tmp_path, 4, name="more.jsonl"), out, config(tmp_path, canned()))
    assert result.exit_code == 2 and "the input differs" in result.output
    assert "overwrites" not in result.output and "kept as it is until" in result.output


def test_an_existing_folder_as_output_is_a_clear_error(tmp_path):
    src, out = corpus(tmp_path, 2), tmp_path / "out.jsonl"
    out.mkdir()
    result = annotate(src, out, config(tmp_path, canned()), "--no-resume")
    assert result.exit_code == 2, result.output  # was: IsADirectoryError
    assert "is a folder" in result.output and isinstance(result.exception, SystemExit)


# ---------------------------------------------------------------- one run per output


def test_a_second_run_on_the_same_output_is_refused(tmp_path, monkeypatch):
    """The second run is another process, started while the first holds the output."""
    src, out = corpus(tmp_path, 4), tmp_path / "out.jsonl"
    cfg = config(tmp_path, canned())
    second = {}
    real = CannedBackend.__call__

    def first_call_starts_another_run(self, queries, **kwargs):
        if not second:
            second["run"] = subprocess.run(
                [sys.executable, "-m", "uniner_spacy.cli", "annotate", str(src), str(out), "--config", str(cfg),
                 "--batch-size", "2"], capture_output=True, text=True, timeout=300,
                env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
        return real(self, queries, **kwargs)

    monkeypatch.setattr(CannedBackend, "__call__", first_call_starts_another_run)
    result = annotate(src, out, cfg)
    assert result.exit_code == 0, result.output
    other = second["run"]
    assert other.returncode == 2, other.stderr  # was: 0, and both runs' rows in one file
    assert "is being written by another run" in other.stderr
    assert [r["_index"] for r in rows(out)] == [0, 1, 2, 3]
    assert not (tmp_path / "out.jsonl.lock").exists()


# ---------------------------------------------------------------- rows that can never succeed


def test_a_text_that_is_not_a_string_is_invalid_not_retryable(tmp_path, asked):
    src = tmp_path / "in.jsonl"
    texts = ["Alice Smith works for Acme Corp in Berlin.", None, 3, ["a", "list"]]
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    out, cfg = tmp_path / "out.jsonl", config(tmp_path, canned())
    result = annotate(src, out, cfg)
    assert result.exit_code == 3, result.output
    assert "4 documents: 1 complete, 0 failed, 0 skipped, 3 invalid" in result.output
    assert "rerun the same command" not in result.output and "fix them in the input" in result.output
    written = rows(out)
    assert [r["_status"] for r in written] == ["ok", "invalid", "invalid", "invalid"]
    assert "not a string" in written[1]["_error"] and written[2]["text"] == 3
    asked.clear()
    again = annotate(src, out, cfg)
    assert again.exit_code == 3 and asked == []  # nothing asked again: a rerun cannot change them


def test_a_text_over_max_length_is_invalid(tmp_path, asked):
    src = tmp_path / "in.jsonl"
    long = "word " * (spacy.blank("en").max_length // 5 + 1)
    src.write_text(json.dumps({"text": "Bob Jones flew to Paris."}) + "\n" + json.dumps({"text": long}) + "\n")
    result = annotate(src, tmp_path / "out.jsonl", config(tmp_path, canned()))
    assert result.exit_code == 3, result.output
    written = rows(tmp_path / "out.jsonl")
    assert [r["_status"] for r in written] == ["ok", "invalid"] and "max_length" in written[1]["_error"]


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.txt"])
def test_an_empty_input_says_so(tmp_path, name):
    src = tmp_path / name
    src.write_text("")
    result = annotate(src, tmp_path / "out.jsonl", config(tmp_path, canned()))
    assert result.exit_code == 2, result.output  # was: 0, without a word
    assert "holds no documents" in result.output and not (tmp_path / "out.jsonl").exists()


# ---------------------------------------------------------------- labels are data


def test_empty_labels_without_a_config_are_a_clear_error(tmp_path):
    result = runner.invoke(app, ["annotate", str(corpus(tmp_path, 1)), str(tmp_path / "o.jsonl"), "--labels", ""])
    assert result.exit_code == 2, result.output  # was: an uncaught ValueError
    assert "Error:" in result.output and "label" in result.output and isinstance(result.exception, SystemExit)


def test_a_label_cannot_add_a_stage(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": LABELS, "backend": canned(),
                                   "stages": {"conflicts": {"@misc": "uniner.Conflicts.v1"}}})
    cfg = tmp_path / "stages.cfg"
    nlp.config.to_disk(cfg)
    evil = 'person=A human;[components.uniner.stages.evil]\n@misc=uniner.Conflicts.v1'
    result = runner.invoke(app, ["annotate", str(corpus(tmp_path, 1)), str(tmp_path / "o.jsonl"),
                                 "--config", str(cfg), "--labels", evil])
    assert result.exit_code == 2, result.output  # was: a run with a stage named evil
    assert "control character" in result.output and not (tmp_path / "o.jsonl").exists()


def test_config_syntax_in_a_label_stays_a_label(tmp_path):
    """Labels reach the pipeline as data: `[x]` or `@misc` in one is no section or registry call."""
    from uniner_spacy.pipeline.build import build_nlp, uniner_pipe

    labels = {"@misc": "a thing", "[x]": None, "person": "A human; ${nlp.lang}"}
    pipe = uniner_pipe(build_nlp(labels, config(tmp_path, canned())))
    assert pipe.label_map == labels and list(pipe.stages) == ["conflicts"]


@pytest.mark.parametrize("label", ["person\nname", "tab\there", "person<|im_end|>", "<|im_start|>user",
                                   "</s>", "<repo_name>", "zero\u200bwidth"])
def test_labels_with_control_characters_or_special_tokens_are_refused(label):
    for labels in ([label], {"person": label}):
        nlp = spacy.blank("en")
        with pytest.raises(ConfigError, match="control character|special token"):
            nlp.add_pipe("uniner", config={"labels": labels, "backend": canned()})
    pipe = spacy.blank("en").add_pipe("uniner", config={"labels": ["person"], "backend": canned()})
    with pytest.raises(ConfigError):
        pipe.add_label(label)
    with pytest.raises(ConfigError):
        pipe.initialize(labels=[label])


def test_every_special_token_of_the_embedded_tokenizer_is_refused_as_a_label():
    from conftest import embedded_tokenizer

    from uniner_spacy.pipeline.component import validate_labels

    tok = embedded_tokenizer()
    specials = {t.content for t in tok.added_tokens_decoder.values() if t.special} | set(tok.all_special_tokens)
    assert specials
    for special in specials:
        with pytest.raises(ConfigError, match="special token"):
            validate_labels([f"a {special} b"])


@pytest.mark.slow
def test_ray_no_resume_keeps_the_shards_until_complete_and_a_held_output_is_refused(tmp_path):
    ray = pytest.importorskip("ray")
    from uniner_spacy.runs import locked

    src, out, pending = corpus(tmp_path, 6), tmp_path / "shards", tmp_path / "shards.pending"
    cfg = config(tmp_path, canned())
    args = ["--ray", "--workers", "1", "--shard-size", "4"]
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        assert annotate(src, out, cfg, *args).exit_code == 0
        good = {p.name: p.read_bytes() for p in out.iterdir()}
        result = annotate(src, out, down(tmp_path), *args, "--no-resume", "--max-failed-batches", "0")
        assert result.exit_code == 1, result.output
        assert {p.name: p.read_bytes() for p in out.iterdir()} == good  # was: the shards deleted first
        assert pending.is_dir() and f"{out} is kept as it was" in result.output
        with locked(out):
            held = annotate(src, out, cfg, *args)
        assert held.exit_code == 2 and "is being written by another run" in held.output
        again = annotate(src, out, cfg, *args, "--no-resume")
        assert again.exit_code == 0, again.output
        assert "Replaced" in again.output and not pending.exists()
        assert [json.loads(line)["_status"] for p in sorted(out.glob("part-*.jsonl"))
                for line in p.read_text().splitlines()] == ["ok"] * 6
    finally:
        ray.shutdown()
