"""The ``interp`` command: parse, call the API, print. No logic lives here.

Built on ``argparse`` (the standard library): ``interp --help`` and ``interp list`` answer without importing numpy,
torch or a CLI framework's validation machinery. Every ``InterpError`` becomes one line on stderr and exit status 2
(1 for a failed ``verify``); no traceback reaches the user for a bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2


def _parse_sets(sets: list[str], analyzers: list[str]) -> dict[str, dict[str, str]]:
    """``--set key=value`` (applies to every analyzer that has the key) or ``--set analyzer.key=value``."""
    import dataclasses

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
        owners = [n for n in analyzers if key in {f.name for f in dataclasses.fields(registry.get(n).Config)}]
        if not owners:
            valid = sorted({f"{n}.{f.name}" for n in analyzers for f in dataclasses.fields(registry.get(n).Config)})
            raise ConfigError(f"--set {key}: no analyzer being run has that setting; valid: {valid}")
        for n in owners:
            out.setdefault(n, {})[key] = value
    return out


def run_options(args: argparse.Namespace) -> Any:
    """``RunOptions`` from the flags the user gave; every default comes from ``RunOptions`` itself."""
    from interp.prompts.source import PromptSource
    from interp.runner.options import RunOptions

    given = {"out_dir": args.out, "device": args.device, "batch_size": args.batch_size,
             "batch_tokens": args.batch_tokens, "runs": tuple(args.run) or None, "progress": not args.quiet,
             "allow_pickle": args.allow_pickle or None, "nonfinite": args.nonfinite, "dask": args.dask or None,
             "dask_address": args.dask_address, "tasks": args.tasks, "concepts": args.concepts,
             "keep_cache": args.keep_cache or None, "disk_budget_gb": args.disk_budget,
             "storage_dtype": args.storage_dtype, "threads": args.threads,
             "workers": args.workers}
    prompts = {"tokens_file": args.tokens, "tokenizer": args.tokenizer, "window": args.window,
               "max_tokens": args.max_tokens}
    if any(v is not None for v in prompts.values()):
        given["prompts"] = PromptSource(**{k: v for k, v in prompts.items() if v is not None})
    return RunOptions(**{k: v for k, v in given.items() if v is not None})


def cmd_analyze(args: argparse.Namespace) -> int:
    from interp import api
    from interp.analyzers import registry
    from interp.errors import InterpError

    if args.checkpoint_dir and args.manifest:
        raise InterpError("give --checkpoint-dir or --manifest, not both")
    names = args.analyzer or registry.names()
    settings = _parse_sets(args.set, names)
    opts = run_options(args)
    series = api.load_series(args.checkpoint_dir or args.manifest, allow_outside_paths=args.allow_outside_paths)
    if args.dry_run:
        return _print_plan(*api.plan_run(series, names, settings, opts))
    report = api.analyze(series, names, settings, opts, command=args.command_line)
    if not report.ran and not report.skipped and report.summaries:   # every analyzer lacked what it needs
        reasons = {n: s.get("skipped", "") for n, s in report.summaries.items()}
        print("error: nothing to analyse in this series: " + "; ".join(f"{n} {why.replace('nothing to analyse: ', '')}"
                                                                       for n, why in reasons.items()),
              file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{report.ran} units run, {report.skipped} already complete; results in {report.out_dir}/")
    _print_headlines(report.summaries, report.out_dir)
    if report.index is not None:
        print(f"\nthe report (every figure, caption and provenance): {report.index}")
    size = f"{report.cache_bytes / 2**20:.1f} MB"
    print(f"activation cache: {size} kept in {opts.cache_root}/" if report.cache_kept else
          f"activation cache: {size} written and removed at the end (--keep-cache keeps it)" if report.cache_bytes
          else "activation cache: nothing written")
    for failure in report.failed:
        print(f"FAILED after retries: {failure}", file=sys.stderr)
    return 1 if report.failed else 0


def _print_plan(plan, estimates: dict) -> int:
    """The cost of a planned run, per analyzer: units, work, bytes to the cache, peak memory."""
    def size(b: float) -> str:
        return next(f"{b / f:.1f} {u}" for f, u in ((2**30, "GB"), (2**20, "MB"), (2**10, "KB"), (1, "B"))
                    if b >= f or u == "B")

    print(f"{'analyzer':<28} {'units':>6} {'GFLOP':>10} {'to disk':>10} {'peak memory':>12}")
    for name, e in estimates.items():
        if name == "TOTAL":
            continue
        print(f"{name:<28} {e.units:>6} {e.flops / 1e9:>10.2f} {size(e.disk_bytes):>10} {size(e.peak_bytes):>12}")
    t = estimates["TOTAL"]
    print(f"{'total (shared cache once)':<28} {t.units:>6} {t.flops / 1e9:>10.2f} {size(t.disk_bytes):>10} "
          f"{size(t.peak_bytes):>12}")
    print(f"{len(plan.refs)} checkpoints; work is forward and backward passes (2 x parameters per token forward), "
          f"not every analyzer's own arithmetic; nothing was computed")
    return 0


def _print_headlines(summaries: dict, out_dir: Path) -> None:
    from interp.report.headline import format_row

    for name, summary in summaries.items():
        if summary.get("skipped"):
            print(f"\n{name}: skipped, {summary['skipped']}")
            continue
        print(f"\n{name}  ({summary.get('units', 0)} units)  -> {out_dir / name / 'summary.json'}")
        for row in summary.get("headline") or []:
            label, value = format_row(row)
            print(f"  {label:<56} {value}")


def cmd_report(args: argparse.Namespace) -> int:
    from interp.report.build import write_report
    from interp.runner.threads import usable_cores

    index = write_report(args.results_dir, png=not args.no_png, workers=min(4, usable_cores()))
    print(f"report written: {index} (open it in a browser; it needs no network)")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from interp.analyzers import registry

    for name, desc in registry.describe().items():
        print(f"{name:<22} {desc}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from interp.api import load_series
    from interp.checkpoints.manifest import verify as verify_series

    report = verify_series(load_series(args.checkpoint_dir or args.manifest,
                                       allow_outside_paths=args.allow_outside_paths))
    for w in report.warnings:
        print(f"warning: {w}")
    for e in report.errors:
        print(f"FAILED: {e}")
    print(f"{len(report.ok)} checkpoints verified, {len(report.errors)} failed, {len(report.warnings)} warnings")
    return 0 if report.passed else 1


def cmd_manifest_init(args: argparse.Namespace) -> int:
    from interp.api import init_manifest

    out, result = init_manifest(args.directory, args.out, args.force)
    runs: dict[tuple[str, str], list] = {}
    for f in result.found:
        runs.setdefault((f.run, f.format), []).append(f)
    for (run, fmt), items in runs.items():
        seeds = sorted({f.seed for f in items})
        steps = sorted({f.step for f in items})
        print(f"run {run!r} ({fmt}): {len(items)} checkpoints, seeds {seeds}, steps {steps[0]}..{steps[-1]}")
    for path, why in result.unclassified:
        print(f"not classified: {path}: {why}")
    print(f"wrote {out}; check it, then `interp verify --manifest {out}` and `interp analyze --manifest {out}`")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from interp.errors import ConfigError
    from interp.toys.training import TrainConfig
    from interp.toys.training import train as train_run

    try:
        raw = json.loads(args.config.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{args.config}: not a readable JSON file of TrainConfig fields ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{args.config}: expected a JSON object of TrainConfig fields")
    for s in args.seed or [raw.get("seed", 0)]:
        try:
            cfg = TrainConfig(**{**raw, "seed": s})
        except TypeError as e:
            raise ConfigError(f"{args.config}: {e}") from None
        entries = train_run(cfg, args.out, device=args.device, progress=not args.quiet)
        last = entries[-1]
        print(f"seed {s}: {len(entries)} checkpoints; last step {last.step}: "
              + ", ".join(f"{k}={v:.3f}" for k, v in last.metrics.items() if k.endswith("accuracy")))
    return 0


def _series_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint-dir", type=Path, help="folder with a manifest or <run>/seed<S>/step<T> files")
    p.add_argument("--manifest", type=Path, help="a checkpoints manifest YAML")
    p.add_argument("--allow-outside-paths", action="store_true",
                   help="let the manifest name files outside its own folder (refused by default)")


def _analyze_parser(sub: Any, name: str = "analyze",
                    text: str = "run analyzers over a checkpoint series (default: the bundled tiny series)") -> None:
    from interp.runner.options import RunOptions as D  # only the class's defaults: no torch, no numpy

    p = sub.add_parser(name, help=text)
    _series_options(p)
    p.add_argument("-a", "--analyzer", action="append", default=[], help="analyzer to run (repeatable); default: all")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="option override key=value or analyzer.key=value (repeatable)")
    p.add_argument("--out", type=Path, help=f"output folder (default: {D.out_dir})")
    p.add_argument("--device", help=f"auto | cpu | cuda | cuda:N (default: {D.device})")
    p.add_argument("--batch-size", type=int, help=f"prompts per forward pass (default: {D.batch_size})")
    p.add_argument("--batch-tokens", type=int, help=f"and at most this many tokens per forward pass (bounds "
                   f"memory at long contexts; default: {D.batch_tokens})")
    p.add_argument("--run", action="append", default=[], help="only these runs (repeatable)")
    p.add_argument("--tokens", type=Path, help="prompts for series without tasks: a .npy of [prompt, pos] token ids, "
                   "or a .txt / .jsonl text file tokenized with the checkpoint's own tokenizer")
    p.add_argument("--tokenizer", type=Path, help="tokenizer.json (or nanoGPT meta.pkl) for a text --tokens file, "
                   "when the checkpoint's folder has none")
    p.add_argument("--window", type=int, help="tokens per prompt for a text --tokens file (default: the context)")
    p.add_argument("--max-tokens", type=int, metavar="N", help="read at most N tokens of the --tokens file")
    p.add_argument("--tasks", type=Path, metavar="FILE", help="your tasks: a JSONL file of {task, prompt, answer[, "
                   "choices, split]} items, tokenized with each checkpoint's own tokenizer (for the task analyzers)")
    p.add_argument("--concepts", type=Path, metavar="FILE", help="cyclic concepts: a JSONL file of {concept, prompt, "
                   "value, period} items (days, months, ...: for sae-manifold and fourier-competition)")
    p.add_argument("--dask", action="store_true", help="run units on a local Dask cluster")
    p.add_argument("--dask-address", metavar="ADDRESS", help="run units on an existing Dask scheduler (e.g. "
                   "tcp://head:8786); every worker must see the checkpoints, the cache and --out at the same paths")
    p.add_argument("--allow-pickle", action="store_true",
                   help="read pickle checkpoints (.pt, .bin) with torch's weights_only loader (refused by default)")
    p.add_argument("--nonfinite", choices=("raise", "keep"),
                   help=f"NaN/inf in weights or activations: stop with an error, or keep and count them (default: "
                        f"{D.nonfinite})")
    p.add_argument("--storage-dtype", choices=("float16", "bfloat16", "float32"),
                   help=f"of cached activations (gradients stay float32; default: {D.storage_dtype})")
    p.add_argument("--keep-cache", action="store_true", help="keep the activation cache when the run ends (default: "
                   "remove the run's own cache folder, saying how much it held)")
    p.add_argument("--disk-budget", type=float, metavar="GB", help="refuse, before anything runs, a run whose "
                   "activation cache would exceed this")
    p.add_argument("--threads", type=int, help="torch threads per process (default: the cores this process may use, "
                                               "shared among the workers)")
    p.add_argument("--workers", type=int, help="processes running jobs side by side on this machine (default: the "
                                               "usable cores, at most 4, on a CPU; 1 on a GPU)")
    p.add_argument("--dry-run", action="store_true", help="print what the run would cost (as `interp plan`) and stop")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (it is off anyway when stderr is not "
                   "a terminal)")
    p.set_defaults(func=cmd_analyze)
    if name == "plan":
        p.set_defaults(dry_run=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp", description="Mechanistic interpretability over checkpoint "
                                     "series (run x seed x step).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _analyze_parser(sub)
    _analyze_parser(sub, "plan", "what an analysis would cost, per analyzer: units, work, bytes to disk, peak "
                    "memory (takes the options of analyze; computes nothing)")

    p = sub.add_parser("report", help="redraw the report pages of a results folder from its saved summaries")
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR", help="a folder written by `interp analyze`")
    p.add_argument("--no-png", action="store_true", help="interactive pages only, no static PNG per figure")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("list", help="show the registered analyzers")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("verify", help="check every checkpoint's size and sha256 against the manifest")
    _series_options(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("manifest", help="write a manifest for a folder of checkpoints")
    msub = p.add_subparsers(dest="manifest_command", metavar="ACTION", required=True)
    p = msub.add_parser("init", help="scan a folder (interp's layout, Hugging Face step or Trainer folders, a hub "
                        "cache, nanoGPT) and write a manifest with each checkpoint's run, seed, step, format, size "
                        "and sha256")
    p.add_argument("directory", type=Path)
    p.add_argument("--out", type=Path, help="manifest to write (default: DIRECTORY/manifest.yaml)")
    p.add_argument("--force", action="store_true", help="replace an existing manifest")
    p.set_defaults(func=cmd_manifest_init)

    p = sub.add_parser("train", help="train a toy model on a task mixture and save a checkpoint series")
    p.add_argument("config", type=Path, help="JSON file of TrainConfig fields (model, mixture, seed, n_steps, ...)")
    p.add_argument("--out", type=Path, default=Path("checkpoints"), help="output folder (its manifest.yaml is "
                   "created or updated)")
    p.add_argument("--seed", type=int, action="append", default=[], help="seeds to train (repeatable)")
    p.add_argument("--device", default="cpu")
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command_line = ["interp", *argv]   # recorded in run.json (absolute paths shortened there)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    from interp.errors import InterpError

    try:
        return args.func(args)
    except InterpError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: complete units are kept; rerun the same command to resume", file=sys.stderr)
        return 130


def entry() -> None:
    from interp.runner.threads import passive_wait_env

    passive_wait_env()   # before anything imports torch: OpenMP reads it once, at load
    sys.exit(main())


if __name__ == "__main__":
    entry()
