"""`annotate --ray` on a local two-worker Ray instance equals the one-process run.

Sharding, order and resuming are the subject, so the canned backend answers (`write_config`'s default)."""
import json

import pytest
from conftest import TINY_FACTS
from test_cli import write_config
from typer.testing import CliRunner

from uniner_spacy.cli.app import app

ray = pytest.importorskip("ray")
runner = CliRunner()
TEXTS = sorted({p for p, _ in TINY_FACTS})


def same(a, b):
    """Equal documents; scores within 0.01 (batches of other sizes round differently), timings aside."""

    def strip(rows):
        return [{k: [{x: y for x, y in e.items() if x != "score"} for e in v] if k in ("ents", "spans")
                 else {x: y for x, y in v.items() if x != "seconds"} if k == "stats" else v
                 for k, v in r.items()} for r in rows]

    def scores(rows):
        return [e["score"] for r in rows for k in ("ents", "spans") for e in r[k]]

    return strip(a) == strip(b) and scores(a) == pytest.approx(scores(b), abs=0.01)


@pytest.mark.slow
def test_ray_annotate_matches_local_run_and_resumes(tmp_path):
    cfg = write_config(tmp_path)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS * 3) + "\n")
    local = tmp_path / "local.jsonl"
    assert runner.invoke(app, ["annotate", str(src), str(local), "--config", str(cfg)]).exit_code == 0
    expected = [json.loads(l) for l in local.read_text().splitlines()]

    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        out = tmp_path / "shards"
        args = ["annotate", str(src), str(out), "--config", str(cfg), "--ray", "--workers", "2",
                "--threads", "1", "--shard-size", "4", "--batch-size", "2"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        shards = sorted(out.glob("part-*.jsonl"))
        assert len(shards) == -(-len(expected) // 4)
        got = [json.loads(l) for s in shards for l in s.read_text().splitlines()]
        assert same(got, expected)  # same documents, same order
        assert json.loads((out / "run.json").read_text())["documents"] == len(expected)
        # a killed run: the last shard half written (a torn line), the one before it with a failed row
        shards[-1].write_text(shards[-1].read_text().splitlines(True)[0] + '{"text": "cut sho')
        before = shards[-2].read_text().splitlines(True)
        failed = json.loads(before[1])
        failed["_status"] = "failed"
        shards[-2].write_text(before[0] + json.dumps(failed) + "\n" + "".join(before[2:]))
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        assert "Repaired" in result.output and "Resuming" in result.output
        assert same(
            [json.loads(l) for s in sorted(out.glob("part-*.jsonl")) for l in s.read_text().splitlines()], expected
        )
        # a folder of another run is refused before Ray starts
        refused = runner.invoke(app, [*args, "--labels", "person"])
        assert refused.exit_code == 2 and "the labels differ" in refused.output

        # a poison document: skipped, reported, the other documents written; exit 1
        poison = tmp_path / "poison.jsonl"
        poison.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS) + '{"text": "a \\ud800 b"}\n')
        bad = tmp_path / "bad-shards"
        result = runner.invoke(app, ["annotate", str(poison), str(bad), "--config", str(cfg), "--ray",
                                     "--workers", "1", "--shard-size", "2", "--batch-size", "2"])
        assert result.exit_code == 1, result.output
        assert "3 documents: 2 complete, 0 failed, 1 skipped" in result.output
        rows = [json.loads(l) for s in sorted(bad.glob("part-*.jsonl")) for l in s.read_bytes().decode().splitlines()]
        assert [(r["_index"], r["_status"]) for r in rows] == [(0, "ok"), (1, "ok"), (2, "skipped")]
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_outage_stops_loudly_and_a_rerun_completes(tmp_path):
    """The workers ask a real HTTP server (tests/fault_server.py) that is down, then back."""
    import spacy
    from conftest import CANNED_ANSWERS
    from fault_server import FaultServer

    src = tmp_path / "in.txt"
    src.write_text("\n".join(TEXTS * 4) + "\n")
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        with FaultServer(CANNED_ANSWERS) as server:
            nlp = spacy.blank("en")
            nlp.add_pipe("uniner", config={"labels": ["person", "organization", "location"], "backend": {
                "@misc": "uniner.OpenAI.v1", "model": "fault", "base_url": server.url, "max_retries": 0,
                "timeout": 2.0, "logprobs": False}})
            cfg = tmp_path / "http.cfg"
            nlp.config.to_disk(cfg)
            out = tmp_path / "shards"
            args = ["annotate", str(src), str(out), "--config", str(cfg), "--ray", "--workers", "1",
                    "--shard-size", "4", "--batch-size", "2", "--max-failed-batches", "1"]
            server.stop()
            result = runner.invoke(app, args)
            server.start()
            assert result.exit_code == 1, result.output
            assert "Stopped after 1 consecutive batches" in result.output and "not reached" in result.output
            before = server.requests
            result = runner.invoke(app, args)
            assert result.exit_code == 0, result.output
            assert server.requests - before == 8 * 3
            rows = [json.loads(l) for s in sorted(out.glob("part-*.jsonl")) for l in s.read_text().splitlines()]
            assert [(r["_index"], r["_status"]) for r in rows] == [(i, "ok") for i in range(8)]
    finally:
        ray.shutdown()
