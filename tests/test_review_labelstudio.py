"""The Label Studio round trip with a real Label Studio on 127.0.0.1: export → import into a project
with predictions → a person's corrections submitted through the API → the project's export read back.

Label Studio lives in a venv of its own (`make labelstudio`, .ci/run does it); without that venv the
test skips and says how to get it. Each run starts it on a copy of the migrated, empty database that
`make labelstudio` leaves in the venv (migrating a fresh one takes minutes); LABEL_STUDIO_USERNAME /
LABEL_STUDIO_PASSWORD name the account it creates there, with a fresh API token.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, canned

from uniner_spacy.io import doc_to_json
from uniner_spacy.palette import label_colors
from uniner_spacy.pipeline.build import build_nlp
from uniner_spacy.review import import_review, read_predictions, read_reviewed, to_corrections, write_export

LS_VENV = Path(os.environ.get("LABEL_STUDIO_VENV", REPO / ".venv-labelstudio"))
LABELS = ["person", "organization", "location"]
START_LIMIT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudio:
    def __init__(self, url: str, token: str):
        self.url, self.token = url, token

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    binary = LS_VENV / "bin" / "label-studio"
    if not binary.exists():
        pytest.skip(f"Label Studio's venv {LS_VENV} is absent: `make labelstudio` installs it")
    data = tmp_path_factory.mktemp("label-studio")
    seed = LS_VENV / "seed"
    if (seed / "label_studio.sqlite3").exists():  # migrated by `make labelstudio`: a start in seconds
        shutil.copytree(seed, data, dirs_exist_ok=True)
    port, token = _free_port(), secrets.token_hex(20)
    # its own venv's packages only: our PYTHONPATH would put this repo's rules/ in place of the `rules` it imports
    env = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
           "LABEL_STUDIO_BASE_DATA_DIR": str(data), "LATEST_VERSION_CHECK": "false",
           "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false",
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "false", "DJANGO_DB": "sqlite"}
    username = os.environ.get("LABEL_STUDIO_USERNAME", "reviewer@example.com")
    password = os.environ.get("LABEL_STUDIO_PASSWORD", secrets.token_hex(8))
    log = (data / "label-studio.log").open("wb")
    process = subprocess.Popen(
        [str(binary), "start", "--no-browser", "--host", "127.0.0.1", "--internal-host", "127.0.0.1",
         "--port", str(port), "--data-dir", str(data), "--username", username, "--password", password,
         "--user-token", token, "--enable-legacy-api-token"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=data)
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        while True:  # bounded: START_LIMIT_S, one request a second
            if process.poll() is not None:
                pytest.fail(f"Label Studio exited ({process.returncode}) while starting: "
                            + (data / "label-studio.log").read_text(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(url + "/api/version", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() - started > START_LIMIT_S:
                pytest.fail(f"Label Studio did not answer on {url} within {START_LIMIT_S} s")
            time.sleep(1)
        print(f"Label Studio started in {time.monotonic() - started:.0f} s")
        yield LabelStudio(url, token)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def _annotated(tmp_path: Path) -> Path:
    """annotate's .jsonl rows for five documents (the canned backend), one of them long."""
    long_text = " ".join(["Alice Smith works for Acme Corp in Berlin."] * 60)  # 2,600 characters, one task
    texts = ["Alice Smith works for Acme Corp in Berlin.", "Bob Jones flew to Paris with Alice Smith.",
             long_text, "Nobody went anywhere that day.", "Paris was quiet."]
    nlp = build_nlp(LABELS, backend=canned())
    out = tmp_path / "out.jsonl"
    with out.open("w") as fh:
        for i, doc in enumerate(nlp.pipe(texts)):
            fh.write(json.dumps(doc_to_json(doc, {"id": f"doc-{i}", "source": "wire", "_index": i})) + "\n")
    return out


def _region(text: str, start: int, end: int, label: str) -> dict:
    return {"from_name": "label", "to_name": "text", "type": "labels",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}}


def test_label_studio_round_trip(label_studio, tmp_path):
    docs = read_predictions(_annotated(tmp_path), LABELS)
    tasks_file, config_file = write_export(docs, tmp_path / "tasks.json", "label-studio", uncertain_first=True)
    project = label_studio.call("POST", "/api/projects", {"title": "uniner review",
                                                          "label_config": config_file.read_text()})
    imported = label_studio.call("POST", f"/api/projects/{project['id']}/import", json.loads(tasks_file.read_text()))
    assert (imported["task_count"], imported["prediction_count"]) == (5, 5)  # every task with its prediction
    config = label_studio.call("GET", f"/api/projects/{project['id']}")["label_config"]
    assert all(f'background="{colour}"' in config for colour in label_colors(LABELS).values())

    listed = label_studio.call("GET", f"/api/tasks?project={project['id']}&page_size=10")["tasks"]
    by_id = {t["data"]["uniner"]["id"]: t for t in listed}
    assert set(by_id) == {"doc-0", "doc-1", "doc-2", "doc-3", "doc-4"}
    long = by_id["doc-2"]["data"]["text"]
    assert len(long) > 2500 and long == docs[[d.id for d in docs].index("doc-2")].text  # not cut
    predictions = label_studio.call("GET", f"/api/predictions?task={by_id['doc-0']['id']}")
    regions = predictions[0]["result"]
    assert {r["value"]["text"]: r["score"] for r in regions} == {
        e_text: score for e_text, score in ((docs[0].text[e.start:e.end], e.score) for e in docs[0].ents)}
    assert predictions[0]["score"] == min(e.score for e in docs[0].ents)

    # a person's corrections: doc-0 Berlin relabelled organization; doc-1 Paris removed, "Bob" → whole
    # name kept, nothing added; doc-2 accepted as proposed; doc-3 skipped; doc-4 left unreviewed
    t0, t1 = by_id["doc-0"]["data"]["text"], by_id["doc-1"]["data"]["text"]
    submitted = {
        "doc-0": [(0, 11, "person"), (22, 31, "organization"), (35, 41, "organization")],
        "doc-1": [(0, 9, "person"), (29, 40, "person")],
        "doc-2": sorted((e.start, e.end, e.label) for e in next(d for d in docs if d.id == "doc-2").ents),
    }
    for doc_id, spans in submitted.items():
        text = by_id[doc_id]["data"]["text"]
        assert all(text[s:e] for s, e, _ in spans)
        label_studio.call("POST", f"/api/tasks/{by_id[doc_id]['id']}/annotations",
                          {"result": [_region(text, s, e, l) for s, e, l in spans], "was_cancelled": False})
    assert t0[35:41] == "Berlin" and t1[29:40] == "Alice Smith"
    label_studio.call("POST", f"/api/tasks/{by_id['doc-3']['id']}/annotations", {"result": [], "was_cancelled": True})

    exported = label_studio.call("GET", f"/api/projects/{project['id']}/export?exportType=JSON&download_all_tasks=true")
    export_file = tmp_path / "reviewed.json"
    export_file.write_text(json.dumps(exported))

    reviewed, report = read_reviewed(export_file)
    assert report.counts == {"accept": 3, "reject": 0, "ignore": 1, "unreviewed": 1}
    got = {d.id: d for d in reviewed}
    for doc_id, spans in submitted.items():
        assert got[doc_id].text == by_id[doc_id]["data"]["text"]  # the same texts come out
        assert got[doc_id].spans == sorted(spans)  # the same spans
        assert got[doc_id].fields["source"] == "wire"  # the document's fields came along
    assert (got["doc-3"].status, got["doc-4"].status) == ("ignore", "unreviewed")

    verdicts = {(c.text[s.start:s.end], s.label, s.verdict) for c in to_corrections(reviewed) for s in c.spans
                if c.text == t0 or c.text == t1}
    assert ("Berlin", "location", "rejected") in verdicts and ("Berlin", "organization", "added") in verdicts
    assert ("Paris", "location", "rejected") in verdicts and ("Alice Smith", "person", "accepted") in verdicts

    # and as gold for `score` / `distill`: the detected format, three reviewed documents
    from uniner_spacy.evaluation.loaders import load_report

    loaded = load_report(export_file)
    assert loaded.format == "label_studio" and len(loaded.examples) == 3
    assert import_review(export_file, gold=tmp_path / "gold.spacy").counts["accept"] == 3
