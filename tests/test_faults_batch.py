"""Batch runs never lose a document: every failure is recovered by a rerun or reported loudly.

Outages run the real CLI against a real HTTP server (tests/fault_server.py) through the
OpenAI backend; the rest run on the canned backend, counting the questions it is asked."""
import json
import re
from pathlib import Path

import pytest
import spacy
from conftest import CANNED_ANSWERS, canned
from fault_server import FaultServer
from spacy.language import Language
from spacy.tokens import DocBin
from typer.testing import CliRunner

from uniner_spacy.backends.canned import CannedBackend
from uniner_spacy.cli.app import app
from uniner_spacy.errors import ConfigError
from uniner_spacy.io import jsonl_line
from uniner_spacy.runs import RunLog, annotate_batch, record_path

REPO = Path(__file__).resolve().parent.parent

runner = CliRunner()
LABELS = ["person", "organization", "location"]
PEOPLE, ORGS, PLACES = CANNED_ANSWERS["person"], CANNED_ANSWERS["organization"], CANNED_ANSWERS["location"]


def corpus(tmp_path, n, poison=None, name="in.jsonl"):
    lines = [json.dumps({"text": f"{PEOPLE[i % 2]} joined {ORGS[0]} in {PLACES[i % 2]} (note {i}).", "id": i})
             for i in range(n)]
    if poison is not None:  # a text UTF-8 cannot encode: JSON's escape of a lone surrogate
        lines[poison] = '{"text": "Bob Jones \\ud800 in Paris", "id": "poison"}'
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def config(tmp_path, backend, name="config.cfg", labels=LABELS):
    nlp = spacy.blank("en")
    nlp.add_pipe("uniner", config={"labels": labels, "backend": backend})
    path = tmp_path / name
    nlp.config.to_disk(path)
    return path


def http_config(tmp_path, url):
    return config(tmp_path, {"@misc": "uniner.OpenAI.v1", "model": "fault", "base_url": url, "max_retries": 0,
                             "timeout": 2.0, "concurrency": 4, "logprobs": False})


def annotate(src, out, cfg, *extra):
    return runner.invoke(app, ["annotate", str(src), str(out), "--config", str(cfg), "--batch-size", "2", *extra])


def rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf8").splitlines()]


def timeless(path):
    """The file's text with the timings (the one thing two runs legitimately differ in) zeroed."""
    return re.sub(r'"seconds": [0-9.e-]+', '"seconds": 0', path.read_text(encoding="utf8"))


@pytest.fixture
def asked(monkeypatch):
    """The questions the canned backend is asked, across every pipeline the CLI builds."""
    questions = []
    real = CannedBackend.__call__

    def counting(self, queries, **kwargs):
        questions.extend(queries)
        return real(self, queries, **kwargs)

    monkeypatch.setattr(CannedBackend, "__call__", counting)
    return questions


@pytest.fixture
def server():
    with FaultServer(CANNED_ANSWERS) as s:
        yield s


def with_baseline(tmp_path, server, n: int):
    """A config over the fault server, an input of `n` documents, the uninterrupted run's output
    (`baseline`) and where the faulty run writes (`out`)."""
    cfg, src = http_config(tmp_path, server.url), corpus(tmp_path, n)
    baseline = tmp_path / "baseline.jsonl"
    assert annotate(src, baseline, cfg).exit_code == 0
    return cfg, src, baseline, tmp_path / "out.jsonl"


# ---------------------------------------------------------------- outages


def test_an_outage_exits_1_and_a_rerun_retries_exactly_the_failed_documents(tmp_path, server):
    cfg, src, baseline, out = with_baseline(tmp_path, server, 6)
    server.stop()
    result = annotate(src, out, cfg, "--max-failed-batches", "0")
    server.start()
    assert result.exit_code == 1, result.output
    assert [(r["_index"], r["_status"]) for r in rows(out)] == [(i, "failed") for i in range(6)]
    assert "6 documents: 0 complete, 6 failed, 0 skipped" in result.output
    assert "rerun the same command to retry exactly those" in result.output
    before = server.requests
    again = annotate(src, out, cfg)
    assert again.exit_code == 0, again.output
    assert server.requests - before == 6 * len(LABELS)  # one passage per document
    assert timeless(out) == timeless(baseline)


def test_a_partial_failure_is_retried_and_nothing_else(tmp_path, server):
    cfg, src, baseline, out = with_baseline(tmp_path, server, 6)
    server.fail_next(3, "500", after=7)
    result = annotate(src, out, cfg)
    assert result.exit_code == 1, result.output
    failed = [r["_index"] for r in rows(out) if r["_status"] != "ok"]
    assert 1 <= len(failed) <= 3 and all(r["_status"] in ("ok", "failed") for r in rows(out))
    assert all(r["stats"]["backend_errors"] for r in rows(out) if r["_status"] == "failed")
    before = server.requests
    assert annotate(src, out, cfg).exit_code == 0
    assert server.requests - before == len(failed) * len(LABELS)
    assert timeless(out) == timeless(baseline)


def test_the_circuit_breaker_stops_a_run_whose_backend_is_down(tmp_path, server):
    cfg, src, baseline, out = with_baseline(tmp_path, server, 10)
    server.stop()
    result = annotate(src, out, cfg, "--max-failed-batches", "2")
    server.start()
    assert result.exit_code == 1, result.output
    assert "Stopped after 2 consecutive batches in which every document failed" in result.output
    assert "looks down" in result.output and "6 not reached" in result.output
    assert [r["_index"] for r in rows(out)] == [0, 1, 2, 3]  # what was written stays
    before = server.requests
    assert annotate(src, out, cfg).exit_code == 0
    assert server.requests - before == 10 * len(LABELS)
    assert timeless(out) == timeless(baseline)


# ---------------------------------------------------------------- resuming


@pytest.mark.parametrize("tail", [b'{"text": "Bob Jo', b'{"text": "Bob Jones"\n'], ids=["no newline", "not JSON"])
def test_a_torn_last_line_is_cut_off_and_its_document_redone(tmp_path, asked, tail):
    cfg, src = config(tmp_path, canned()), corpus(tmp_path, 5)
    out = tmp_path / "out.jsonl"
    assert annotate(src, out, cfg).exit_code == 0
    complete = out.read_text(encoding="utf8")
    out.write_bytes(b"".join(complete.encode("utf8").splitlines(True)[:2]) + tail)  # killed mid-write
    asked.clear()
    result = annotate(src, out, cfg)
    assert result.exit_code == 0, result.output
    assert "Repaired" in result.output and "torn last line" in result.output
    assert len(asked) == 3 * len(LABELS)
    assert timeless(out) == re.sub(r'"seconds": [0-9.e-]+', '"seconds": 0', complete)


def test_the_run_record_pins_input_labels_and_config(tmp_path):
    cfg, src = config(tmp_path, canned()), corpus(tmp_path, 4)
    out = tmp_path / "out.jsonl"
    assert annotate(src, out, cfg).exit_code == 0
    record = json.loads(record_path(out).read_text())
    assert record["documents"] == 4 and record["labels"] == {label: None for label in LABELS}
    assert record["input"].startswith("sha256:") and record["config"].startswith("sha256:") and record["version"]
    written = out.read_bytes()
    cases = {
        "the input differs": (corpus(tmp_path, 5, name="more.jsonl"), cfg, []),
        "the labels differ": (src, cfg, ["--labels", "person,organization"]),
        "the pipeline config differs": (src, config(tmp_path, canned(score=-0.5), name="other.cfg"), []),
    }
    for what, (other_src, other_cfg, extra) in cases.items():
        result = annotate(other_src, out, other_cfg, *extra)
        assert result.exit_code == 2, result.output
        assert what in result.output and "--no-resume" in result.output
        for other in set(cases) - {what}:
            assert other not in result.output
        assert out.read_bytes() == written
    result = annotate(src, out, cfg, "--labels", "person,organization", "--no-resume")
    assert result.exit_code == 0, result.output
    assert json.loads(record_path(out).read_text())["labels"] == {"person": None, "organization": None}


def test_an_output_without_a_run_record_is_not_resumed(tmp_path):
    cfg, src = config(tmp_path, canned()), corpus(tmp_path, 2)
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"text": "an older version's row", "ents": []}) + "\n")
    result = annotate(src, out, cfg)
    assert result.exit_code == 2 and "no run record" in result.output and "--no-resume" in result.output
    assert annotate(src, out, cfg, "--no-resume").exit_code == 0
    assert [r["_status"] for r in rows(out)] == ["ok", "ok"]


# ---------------------------------------------------------------- poison documents


def test_a_text_that_cannot_be_encoded_is_skipped_recorded_and_reported(tmp_path, asked):
    cfg, src = config(tmp_path, canned()), corpus(tmp_path, 5, poison=2)
    out = tmp_path / "out.jsonl"
    result = annotate(src, out, cfg)
    assert result.exit_code == 1, result.output
    assert "5 documents: 4 complete, 0 failed, 1 skipped" in result.output and "UnicodeEncodeError" in result.output
    out.read_bytes().decode("utf8")  # a valid UTF-8 file: the bad text is written as a \ud800 escape
    written = rows(out)
    assert [r["_status"] for r in written] == ["ok", "ok", "skipped", "ok", "ok"]
    assert written[2]["text"] == "Bob Jones \ud800 in Paris" and written[2]["id"] == "poison"
    assert "UnicodeEncodeError" in written[2]["_error"] and written[2]["stats"]["errors"]
    assert {e["text"] for e in written[3]["ents"]} == {"Alice Smith", "Acme Corp", "Paris"}
    asked.clear()
    again = annotate(src, out, cfg)
    assert again.exit_code == 1 and "1 skipped" in again.output
    assert asked == []  # the good documents are not asked again
    assert [r["_status"] for r in rows(out)] == ["ok", "ok", "skipped", "ok", "ok"]


@pytest.mark.parametrize("suffix", [".spacy", ".html"])
def test_docbin_and_html_outputs_leave_incomplete_documents_to_a_failed_file(tmp_path, suffix):
    cfg, src = config(tmp_path, canned()), corpus(tmp_path, 4, poison=1)
    out = tmp_path / f"out{suffix}"
    result = annotate(src, out, cfg)
    assert result.exit_code == 1, result.output
    assert "4 documents: 3 complete, 0 failed, 1 skipped" in result.output
    failed = rows(tmp_path / f"out{suffix}.failed.jsonl")
    assert [(r["_index"], r["_status"], r["id"]) for r in failed] == [(1, "skipped", "poison")]
    if suffix == ".spacy":
        docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
        assert [d.text for d in docs] == [r["text"] for i, r in enumerate(rows(src)) if i != 1]


def test_docbin_output_of_a_failed_backend_exits_1(tmp_path):
    cfg, src = config(tmp_path, canned(errors=["location"])), corpus(tmp_path, 2)
    result = annotate(src, tmp_path / "out.spacy", cfg, "--max-failed-batches", "0")
    assert result.exit_code == 1 and "2 failed" in result.output
    assert len(list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(spacy.blank("en").vocab))) == 0
    assert [r["_status"] for r in rows(tmp_path / "out.spacy.failed.jsonl")] == ["failed", "failed"]


@Language.component("poison_test_raiser")
def poison_test_raiser(doc):
    if "POISON" in doc.text:
        raise ValueError("a poison document")
    return doc


@pytest.mark.parametrize("handler", [None, "ignore"])
def test_a_document_that_raises_or_is_dropped_does_not_shift_the_others(handler):
    nlp = spacy.blank("en")
    nlp.add_pipe("poison_test_raiser")
    nlp.add_pipe("uniner", config={"labels": LABELS, "backend": canned()})
    if handler:
        nlp.set_error_handler(lambda name, proc, docs, err: None)  # drops what fails
    texts = ["Alice Smith works for Acme Corp in Berlin.", "POISON Bob Jones", "Bob Jones flew to Paris."]
    outcomes = annotate_batch(nlp, [(10 + i, t, {"k": i}) for i, t in enumerate(texts)], batch_size=3)
    assert [(o.index, o.status, o.row["k"]) for o in outcomes] == [(10, "ok", 0), (11, "skipped", 1), (12, "ok", 2)]
    assert outcomes[1].row["_error"] == ("ValueError: a poison document" if handler is None
                                         else "the pipeline's error handler dropped it")
    assert [e["text"] for e in outcomes[2].row["ents"]] == ["Bob Jones", "Paris"]


@Language.component("setup_test_raiser")
def setup_test_raiser(doc):
    raise ConfigError("a setting that cannot work")


def test_a_setup_error_is_no_poison_document_it_stops_the_run(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("setup_test_raiser")
    with pytest.raises(ConfigError):
        annotate_batch(nlp, [(0, "a", {}), (1, "b", {})], batch_size=2)


def test_rows_are_always_writable():
    assert jsonl_line({"text": "café"}) == '{"text": "café"}\n'.encode("utf8")
    line = jsonl_line({"text": "a \ud800 b"})
    assert line == b'{"text": "a \\ud800 b"}\n' and json.loads(line)["text"] == "a \ud800 b"


# ---------------------------------------------------------------- the log itself


def _row(index, status="ok"):
    return jsonl_line({"text": str(index), "_index": index, "_status": status})


@pytest.mark.parametrize("tail", [b'{"text": "3", "_ind', b"  ", _row(3)[:-1]], ids=["cut", "blank", "no newline"])
def test_a_shard_cut_mid_line_is_repaired_and_not_valid(tmp_path, tail):
    path = tmp_path / "part-00001.jsonl"
    path.write_bytes(_row(2) + tail)
    log = RunLog(path, range(2, 4), echo=lambda message: None)
    assert not log.valid and log.todo() == [3] and path.read_bytes() == _row(2)
    log.append(_row(3))
    log.close()
    assert RunLog(path, range(2, 4), echo=print).valid


def test_the_log_keeps_the_latest_row_of_each_document_in_input_order(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(_row(0) + _row(1, "failed") + _row(2) + _row(3, "skipped") + b'{"someone": "else"}\n' + _row(4))
    messages = []
    log = RunLog(path, range(6), echo=messages.append)
    assert log.todo() == [1, 3, 5] and not log.valid
    assert any(":5 is not a row of this run" in m for m in messages)
    for index in log.todo():
        log.append(_row(index))
    log.close()
    assert path.read_bytes() == b"".join(_row(i) for i in range(6))
    assert RunLog(path, range(6), echo=print).valid
