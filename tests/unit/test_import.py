import subprocess
import sys


def test_import_interp_does_not_import_torch():
    code = ("import sys, interp; interp.InterpError; interp.MixtureSpec; "
            "bad = [m for m in ('torch', 'transformer_lens', 'sae_lens', 'umap', 'matplotlib') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, f"import interp pulled in heavy modules: {r.stdout} {r.stderr}"


def test_cli_help_and_list_import_neither_numpy_nor_torch():
    for args in (["list"], ["--help"], ["analyze", "--help"]):
        code = ("import sys, contextlib, io; from interp.cli import main\n"
                "out = io.StringIO()\n"
                "with contextlib.redirect_stdout(out):\n"
                "    try: rc = main(ARGS)\n"
                "    except SystemExit as e: rc = e.code\n"
                "assert rc == 0 and ('neuron-stats' in out.getvalue() or 'usage' in out.getvalue()), out.getvalue()\n"
                "heavy = [m for m in ('numpy', 'torch', 'pydantic', 'typer') if m in sys.modules]\n"
                "sys.exit(f'imported {heavy}' if heavy else 0)") .replace("ARGS", repr(args))
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stdout + r.stderr)
