import subprocess
import sys


def test_import_interp_does_not_import_torch():
    code = ("import sys, interp; interp.InterpError; interp.MixtureSpec; "
            "bad = [m for m in ('torch', 'transformer_lens', 'sae_lens', 'umap', 'matplotlib') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, f"import interp pulled in heavy modules: {r.stdout} {r.stderr}"


def test_cli_help_and_list_do_not_import_torch():
    code = ("import sys; from interp.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['list']); assert r.exit_code == 0, r.output; "
            "assert 'neuron-stats' in r.output; sys.exit(1 if 'torch' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
