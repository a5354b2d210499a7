"""The ``interp`` command: parse, call the API, print. No logic lives here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Mechanistic interpretability over checkpoint series (run x seed x step).")


def _fail(e: Exception) -> None:
    typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _parse_sets(sets: list[str], analyzers: list[str]) -> dict[str, dict[str, str]]:
    """``--set key=value`` (applies to every analyzer that has the key) or ``--set analyzer.key=value``."""
    from interp.analyzers import registry
    from interp.errors import ConfigError

    out: dict[str, dict[str, str]] = {}
    for s in sets:
        if "=" not in s:
            raise ConfigError(f"--set {s!r}: expected key=value or analyzer.key=value")
        key, value = s.split("=", 1)
        if "." in key and key.split(".", 1)[0] in registry.names():
            name, key = key.split(".", 1)
            out.setdefault(name, {})[key] = value
            continue
        import dataclasses

        owners = [n for n in analyzers
                  if key in {f.name for f in dataclasses.fields(registry.get(n).Config)}]
        if not owners:
            valid = sorted({f"{n}.{f.name}" for n in analyzers for f in dataclasses.fields(registry.get(n).Config)})
            raise ConfigError(f"--set {key}: no analyzer being run has that setting; valid: {valid}")
        for n in owners:
            out.setdefault(n, {})[key] = value
    return out


@app.command()
def analyze(
    checkpoint_dir: Optional[Path] = typer.Option(None, help="Folder with a manifest or <run>/seed<S>/step<T> files."),
    manifest: Optional[Path] = typer.Option(None, help="A checkpoints manifest YAML."),
    analyzer: list[str] = typer.Option([], "--analyzer", "-a", help="Analyzer to run (repeatable); default: all."),
    set_: list[str] = typer.Option([], "--set", help="Config override key=value or analyzer.key=value."),
    out: Path = typer.Option(Path("interp-results"), help="Output folder."),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N"),
    batch_size: int = typer.Option(512, min=1),
    run: list[str] = typer.Option([], "--run", help="Only these runs (repeatable)."),
    tokens: Optional[Path] = typer.Option(None, help="Token file (.npy [prompt, pos]) for series without tasks."),
    dask: bool = typer.Option(False, "--dask", help="Run units on a local Dask cluster."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Run analyzers over a checkpoint series (default: the tiny series bundled with interp)."""
    from interp import api
    from interp.analyzers import registry
    from interp.context import PromptSource
    from interp.errors import InterpError

    try:
        if checkpoint_dir and manifest:
            raise InterpError("give --checkpoint-dir or --manifest, not both")
        names = analyzer or registry.names()
        settings = _parse_sets(set_, names)
        opts = api.RunOptions(out_dir=out, device=device, batch_size=batch_size, runs=tuple(run) or None,
                              prompts=PromptSource(tokens_file=tokens), progress=not quiet)
        executor = None
        if dask:
            from interp.executors import DaskExecutor

            executor = DaskExecutor()
        report = api.analyze(checkpoint_dir or manifest, names, settings, opts, executor=executor)
        if executor is not None:
            executor.close()
    except InterpError as e:
        _fail(e)
    typer.echo(f"{report.ran} units run, {report.skipped} already complete; results in {report.out_dir}/")
    for name, summary in report.summaries.items():
        typer.echo(f"\n{name}  ({summary.get('units', 0)} units)  -> {report.out_dir / name / 'summary.json'}")
        for k, v in (summary.get("headline") or {}).items():
            typer.echo(f"  {k:<40} {v}")
    if report.index is not None:
        typer.echo(f"\nall figures and headlines on one page: {report.index}")


@app.command("list")
def list_() -> None:
    """Show the registered analyzers."""
    from interp.analyzers import registry

    for name, desc in registry.describe().items():
        typer.echo(f"{name:<22} {desc}")


@app.command()
def verify(
    checkpoint_dir: Optional[Path] = typer.Option(None, help="Folder with a manifest or checkpoint files."),
    manifest: Optional[Path] = typer.Option(None, help="A checkpoints manifest YAML."),
) -> None:
    """Check every checkpoint's size and sha256 against the manifest; warn on byte-identical steps."""
    from interp.api import load_series
    from interp.errors import InterpError
    from interp.manifest import verify as verify_series

    try:
        report = verify_series(load_series(checkpoint_dir or manifest))
    except InterpError as e:
        _fail(e)
    for w in report.warnings:
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW)
    for e in report.errors:
        typer.secho(f"FAILED: {e}", fg=typer.colors.RED)
    typer.echo(f"{len(report.ok)} checkpoints verified, {len(report.errors)} failed, {len(report.warnings)} warnings")
    if not report.passed:
        raise typer.Exit(1)


@app.command()
def train(
    config: Path = typer.Argument(..., help="JSON file of TrainConfig fields (model, mixture, seed, n_steps, ...)."),
    out: Path = typer.Option(Path("checkpoints"), help="Output folder; its manifest.yaml is created or updated."),
    seed: list[int] = typer.Option([], "--seed", help="Seeds to train (repeatable); default: the config's."),
    device: str = typer.Option("cpu"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train a toy model on a task mixture and save a checkpoint series."""
    from interp.errors import InterpError
    from interp.training import TrainConfig
    from interp.training import train as train_run

    try:
        raw = json.loads(config.read_text())
        for s in seed or [raw.get("seed", 0)]:
            entries = train_run(TrainConfig(**{**raw, "seed": s}), out, device=device, progress=not quiet)
            last = entries[-1]
            typer.echo(f"seed {s}: {len(entries)} checkpoints; last step {last.step}: "
                       + ", ".join(f"{k}={v:.3f}" for k, v in last.metrics.items() if k.endswith("accuracy")))
    except (InterpError, TypeError, json.JSONDecodeError) as e:
        _fail(e)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
