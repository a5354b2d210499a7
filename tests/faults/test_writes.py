"""Family 6: every write is temp-then-rename; a full disk or a read-only --out gives one clear error, leaves no
temporary file and nothing half-written that a later run would take for complete."""

import errno
import os
import subprocess
import uuid

import pytest

import interp
from interp.errors import OutputError
from interp.results import load_results
from interp.trust import atomic
from tests.helpers import cli, no_partial_files, no_traceback


def _opts(out, **kw):
    # in this process: the faults are injected here, by patching interp's writes
    return interp.RunOptions(out_dir=out, progress=False, workers=1, **kw)


def _count_writes(monkeypatch, fn):
    calls = []
    real = atomic.fsync_file
    monkeypatch.setattr(atomic, "fsync_file", lambda p: (calls.append(p), real(p))[1])
    fn()
    monkeypatch.setattr(atomic, "fsync_file", real)
    return calls


@pytest.mark.slow
def test_injected_enospc_at_every_write_site(series, tmp_path, monkeypatch):
    """Fail the k-th write of a run for every k: each failure is an OutputError naming the file; nothing partial
    survives; a rerun completes and equals an undisturbed run."""
    def run(out):
        return interp.analyze(series, ["neuron-stats", "stages"], {"stages": {"llc": False}}, _opts(out))

    clean = tmp_path / "clean"
    writes = _count_writes(monkeypatch, lambda: run(clean))
    kinds = {p.name.split(atomic.TMP_MARK)[0].rpartition(".")[2] for p in writes}
    assert {"h5", "json", "png", "html"} <= kinds, kinds          # results, cache, summaries, figures, the page
    expected = {r.unit_id: r for r in load_results(clean, "neuron-stats")}
    for k in range(0, len(writes), max(1, len(writes) // 12)):
        out = tmp_path / f"k{k}"
        seen = []
        real = atomic.fsync_file

        def failing(p, k=k, seen=seen, real=real):
            seen.append(p)
            if len(seen) == k + 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(p)

        monkeypatch.setattr(atomic, "fsync_file", failing)
        with pytest.raises(OutputError) as e:
            run(out)
        monkeypatch.setattr(atomic, "fsync_file", real)
        assert "no space left" in str(e.value) and str(out) in str(e.value)
        no_partial_files(out)
        run(out)   # resumes
        got = {r.unit_id: r for r in load_results(out, "neuron-stats")}
        assert got.keys() == expected.keys() and all(got[u].equals(expected[u]) for u in got)


def test_read_only_out_is_a_clear_error(series, tmp_path):
    """An --out that cannot be written: a read-only folder for an ordinary user; as root (who ignores permissions, as
    CI runs), a folder under a regular file, which no user can create."""
    if os.geteuid() == 0:
        blocker = tmp_path / "a-file"
        blocker.write_text("not a folder")
        out = blocker / "out"
        with pytest.raises(OutputError, match="(cannot write|could not be written).*Not a directory") as e:
            interp.analyze(series, ["neuron-stats"], options=_opts(out))
        assert str(blocker) in str(e.value)
        assert blocker.read_text() == "not a folder"
        return
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            interp.analyze(series, ["neuron-stats"], options=_opts(out))
    finally:
        out.chmod(0o700)


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / f"disk{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.decode().strip() or 'not permitted'})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_real_full_disk(series, small_disk):
    out = small_disk / "out"
    r = cli(["analyze", "--checkpoint-dir", series, "--out", out, "-a", "neuron-stats", "-q"])
    assert r.exit_code == 2, r.output
    no_traceback(r)
    assert "no space left" in r.stderr
    no_partial_files(out)
    for res in load_results(out, "neuron-stats"):   # whatever fitted is complete and readable
        assert res.arrays


def test_a_read_only_filesystem(series, small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    r = cli(["analyze", "--checkpoint-dir", series, "--out", small_disk / "out", "-a", "neuron-stats", "-q"])
    assert r.exit_code == 2 and "cannot write" in r.stderr
    no_traceback(r)


def test_orphaned_temporaries_of_dead_runs_are_swept(series, tmp_path):
    out = tmp_path / "o"
    orphan = out / "neuron-stats" / "tiny" / "seed0" / f"step20.h5{atomic.TMP_MARK}999999999-1"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half")
    interp.analyze(series, ["neuron-stats"], options=_opts(out))
    assert not orphan.exists()
