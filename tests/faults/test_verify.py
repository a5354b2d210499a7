"""Family 8: ``interp verify`` says when there is nothing to verify against."""

from tests.helpers import cli


def test_verify_without_a_manifest_says_so(series):
    (series / "manifest.yaml").unlink()
    r = cli(["verify", "--checkpoint-dir", series])
    assert r.exit_code == 1
    assert "no manifest" in r.output and "nothing to verify against" in r.output
    assert "interp manifest init" in r.output


def test_verify_with_a_manifest_checks_every_file(series):
    r = cli(["verify", "--checkpoint-dir", series])
    assert r.exit_code == 0 and "8 checkpoints verified, 0 failed" in r.output
