import shutil

import pytest
import yaml

from interp.checkpoints.manifest import discover, load_manifest, save_manifest, verify
from interp.errors import ManifestError
from tests.helpers import cli


def test_training_writes_a_manifest_with_hashes_that_verifies(tiny_series_dir):
    series = load_manifest(tiny_series_dir / "manifest.yaml")
    refs = series.refs(run="tiny")
    assert {(r.seed, r.step) for r in refs} == {(s, t) for s in (0, 1) for t in (0, 1, 4, 20)}
    assert all(r.sha256 and r.size and r.path.is_file() for r in refs)
    assert "a/accuracy" in refs[-1].metrics
    assert verify(series).passed


def test_bundled_series_verifies(bundled):
    report = verify(bundled)
    assert report.passed, report.errors
    assert len(report.ok) == len(bundled.refs())


def test_corrupting_one_byte_fails_verify_naming_the_file(tiny_series_dir, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(tiny_series_dir, d)
    victim = d / "tiny" / "seed1" / "step000004.safetensors"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    r = cli(["verify", "--checkpoint-dir", str(d)])
    assert r.exit_code != 0
    assert "step000004.safetensors" in r.output and "sha256" in r.output
    r = cli(["verify", "--checkpoint-dir", str(tiny_series_dir)])
    assert r.exit_code == 0, r.output


def test_byte_identical_steps_warn(tiny_series_dir, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(tiny_series_dir, d)
    seed_dir = d / "tiny" / "seed0"
    shutil.copy(seed_dir / "step000001.safetensors", seed_dir / "step000004.safetensors")
    (d / "manifest.yaml").unlink()  # rebuild from the naming rule, hashing what is there now
    assert not verify(discover(d)).passed, "without a manifest there is nothing to verify against"
    save_manifest(discover(d).manifest, d / "manifest.yaml")
    report = verify(load_manifest(d / "manifest.yaml"))
    assert report.passed and any("byte-identical to step 1" in w for w in report.warnings)


def test_discover_builds_a_series_from_the_naming_rule(tiny_series_dir, tmp_path):
    d = tmp_path / "s"
    shutil.copytree(tiny_series_dir, d)
    (d / "manifest.yaml").unlink()
    (d / "tiny" / "seed0" / "notes.txt").write_text("ignored")
    series = discover(d)
    original = load_manifest(tiny_series_dir / "manifest.yaml")
    assert [(r.id, r.sha256) for r in series.refs()] == [(r.id, r.sha256) for r in original.refs()]
    assert series.refs()[0].mixture_spec == original.refs()[0].mixture_spec


def test_discover_errors_say_what_is_expected(tmp_path):
    with pytest.raises(ManifestError, match=r"<run>/seed<S>/step<T>\.safetensors"):
        discover(tmp_path)
    with pytest.raises(ManifestError, match="does not exist"):
        discover(tmp_path / "nope")


@pytest.mark.parametrize("mutate, field", [
    (lambda m: m["runs"][0]["checkpoints"][0].update(step=-1), "runs.0.checkpoints.0.step"),
    (lambda m: m["runs"][0]["checkpoints"][0].update(sha256="xyz"), "runs.0.checkpoints.0.sha256"),
    (lambda m: m["runs"][0].update(format="onnx"), "runs.0.format"),
    (lambda m: m["runs"][0].update(colour="red"), "runs.0.colour"),
    (lambda m: m["runs"][0]["processing"].update(dtype="int8"), "runs.0.processing.dtype"),
    (lambda m: m["runs"].append(dict(m["runs"][0])), "run names must be unique"),
    (lambda m: m["runs"][0]["mixture"]["tasks"][0].update(kind="sorting"), "kind 'sorting' is not one of"),
])
def test_invalid_manifests_name_the_field(tiny_series_dir, tmp_path, mutate, field):
    raw = yaml.safe_load((tiny_series_dir / "manifest.yaml").read_text())
    mutate(raw)
    p = tmp_path / "m.yaml"
    p.write_text(yaml.safe_dump(raw))
    with pytest.raises(ManifestError) as e:
        load_manifest(p)
    assert field in str(e.value) and str(p) in str(e.value)


def test_top_level_manifest_is_the_bundled_one():
    from pathlib import Path

    from interp.api import bundled_manifest

    top = Path(__file__).resolve().parents[2] / "checkpoints_manifest.yaml"
    assert top.is_file()
    assert load_manifest(top).refs() == load_manifest(bundled_manifest()).refs()
