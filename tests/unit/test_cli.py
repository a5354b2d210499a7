import json

from interp.checkpoints.manifest import load_manifest
from tests.helpers import cli, tiny_train_config


def test_list_shows_every_analyzer_with_a_description():
    from interp.analyzers import registry

    r = cli(["list"])
    assert r.exit_code == 0
    for name, desc in registry.describe().items():
        assert name in r.output and desc in r.output


def test_unknown_settings_and_analyzers_are_rejected_with_the_valid_ones(tiny_series_dir, tmp_path):
    r = cli(["analyze", "--checkpoint-dir", str(tiny_series_dir), "--out", str(tmp_path),
                            "-a", "neuron-stats", "--set", "positionz=1"])
    assert r.exit_code == 2 and "neuron-stats.positions" in r.output
    r = cli(["analyze", "--checkpoint-dir", str(tiny_series_dir), "-a", "neuron-stat"])
    assert r.exit_code == 2 and "neuron-stats" in r.output and "did you mean" in r.output.lower()
    r = cli(["analyze", "--checkpoint-dir", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_analyze_writes_results_and_prints_headlines(tiny_series_dir, tmp_path):
    out = tmp_path / "res"
    r = cli(["analyze", "--checkpoint-dir", str(tiny_series_dir), "--out", str(out),
                            "-a", "neuron-stats", "--set", "active_threshold=0.5", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "8 units run, 0 already complete" in r.output
    summary = json.loads((out / "neuron-stats" / "summary.json").read_text())
    assert summary["units"] == 8 and summary["headline"]
    unit = json.loads((out / "neuron-stats" / "tiny" / "seed1" / "step20.json").read_text())
    assert unit["config"]["active_threshold"] == 0.5
    assert unit["provenance"]["checkpoints"][0]["sha256"]
    r = cli(["analyze", "--checkpoint-dir", str(tiny_series_dir), "--out", str(out),
                            "-a", "neuron-stats", "--set", "active_threshold=0.5", "--quiet"])
    assert "0 units run, 8 already complete" in r.output


def test_train_command(tmp_path):
    cfg = tiny_train_config(run="cli", n_steps=5).to_json()
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    r = cli(["train", str(tmp_path / "c.json"), "--out", str(tmp_path / "o"), "--seed", "3",
                            "--quiet"])
    assert r.exit_code == 0, r.output
    refs = load_manifest(tmp_path / "o" / "manifest.yaml").refs()
    assert {r.seed for r in refs} == {3} and max(r.step for r in refs) == 5


def test_changed_settings_recompute_instead_of_reusing_stale_units(tiny_series_dir, tmp_path):
    args = ["analyze", "--checkpoint-dir", str(tiny_series_dir), "--out", str(tmp_path), "-a", "neuron-stats",
            "--quiet"]
    assert "8 units run" in cli(args).output
    r = cli(args + ["--set", "active_threshold=0.25"])
    assert "8 units run, 0 already complete" in r.output
    unit = json.loads((tmp_path / "neuron-stats" / "tiny" / "seed0" / "step20.json").read_text())
    assert unit["config"]["active_threshold"] == 0.25
