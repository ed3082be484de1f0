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
        # a killed run: the last shard half written, the one before it missing a line
        shards[-1].write_text(shards[-1].read_text().splitlines(True)[0])
        assert runner.invoke(app, args).exit_code == 0
        assert same(
            [json.loads(l) for s in sorted(out.glob("part-*.jsonl")) for l in s.read_text().splitlines()], expected
        )
    finally:
        ray.shutdown()
