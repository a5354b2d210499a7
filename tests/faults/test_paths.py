"""Family 1: nothing is written outside --out, nothing is read outside the checkpoint folder without an opt-in,
and no device, FIFO or folder is read where a checkpoint file is expected."""

import os
import shutil

import pytest

import interp
from interp.errors import UnsafeInputError
from tests.helpers import cli, edit_manifest, files_under, no_traceback, one_checkpoint

OPTS = dict(progress=False)


def _analyze(series, out, **kw):
    return interp.analyze(series, ["neuron-stats"], options=interp.RunOptions(out_dir=out, **OPTS, **kw))


@pytest.mark.parametrize("name", ["../..", "/abs/path", "a/b", "..", ".hidden", "-rf", "x" * 200, "", "a b"])
def test_unsafe_run_names_are_refused_before_anything_is_written(series, tmp_path, outside, name):
    edit_manifest(series, lambda m: m["runs"][0].update(name=name))
    out = outside / "out"
    with pytest.raises(UnsafeInputError) as e:
        _analyze(series, out)
    assert repr(name) in str(e.value) and "letters, digits" in str(e.value)
    assert "manifest.yaml" in str(e.value)
    assert files_under(outside) == set() and files_under(tmp_path / "series") == files_under(series)


def test_hook_names_that_are_not_file_names_are_refused(series, tmp_path):
    with pytest.raises(UnsafeInputError, match="hook name '../../x'"):
        interp.analyze(series, ["sae-manifold"], {"sae-manifold": {"hook": "../../x"}},
                       interp.RunOptions(out_dir=tmp_path / "o", **OPTS))


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_checkpoint_paths_outside_the_folder_need_the_opt_in(series, tmp_path, outside, how):
    elsewhere = outside / "ckpt.safetensors"
    shutil.copy(one_checkpoint(series, seed=1, step=20), elsewhere)   # the last entry of the manifest
    target = {"dotdot": "../outside/ckpt.safetensors", "absolute": str(elsewhere), "symlink": None}[how]
    if how == "symlink":
        link = series / "tiny" / "seed0" / "link.safetensors"
        link.symlink_to(elsewhere)
        target = "tiny/seed0/link.safetensors"
    edit_manifest(series, lambda m: m["runs"][0]["checkpoints"][-1].update(path=target))
    with pytest.raises(UnsafeInputError) as e:
        _analyze(series, tmp_path / "o")
    assert "outside" in str(e.value) and "--allow-outside-paths" in str(e.value)
    assert not (tmp_path / "o").exists()
    report = interp.analyze(interp.load_series(series, allow_outside_paths=True), ["neuron-stats"],
                            options=interp.RunOptions(out_dir=tmp_path / "o", **OPTS))
    assert report.ran == 8
    assert files_under(outside) == {"ckpt.safetensors"}


@pytest.mark.parametrize("kind", ["devzero", "fifo", "folder"])
def test_special_files_are_refused_even_with_the_opt_in(series, tmp_path, kind):
    victim = one_checkpoint(series)
    victim.unlink()
    if kind == "devzero":
        victim.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(victim)
    else:
        victim.mkdir()
    for allow in (False, True):
        s = interp.load_series(series, allow_outside_paths=allow)
        with pytest.raises(UnsafeInputError) as e:
            interp.analyze(s, ["neuron-stats"], options=interp.RunOptions(out_dir=tmp_path / "o", **OPTS))
        assert "step000020.safetensors" in str(e.value) or "/dev/zero" in str(e.value)
    r = cli(["verify", "--checkpoint-dir", series])
    assert r.exit_code != 0 and any(s in r.output for s in ("not a regular file", "is a folder", "outside"))


def test_a_folder_checkpoint_outside_is_refused_and_never_hashed(series, tmp_path):
    edit_manifest(series, lambda m: m["runs"][0].update(format="hf", model={}) or
                  m["runs"][0]["checkpoints"][0].update(path="/usr", sha256=None, size=None))
    with pytest.raises(UnsafeInputError, match="/usr"):
        interp.load_series(series).refs()


def test_cli_path_escape_exits_nonzero_without_traceback(series, tmp_path):
    edit_manifest(series, lambda m: m["runs"][0].update(name="../../escape"))
    r = cli(["analyze", "--checkpoint-dir", series, "--out", tmp_path / "o", "-a", "neuron-stats", "-q"])
    assert r.exit_code == 2
    no_traceback(r)
    assert not (tmp_path / "escape").exists() and not (tmp_path.parent / "escape").exists()
