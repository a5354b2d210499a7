"""``universal-neurons``: which MLP neurons recur in every seed (Gurnee et al., arXiv 2401.12181; SCIENCE.md 3).

Scope: all seeds of a run at one step, on identical prompts (asserted by the runner). For every ordered pair of
seeds (a, b), the streaming Pearson correlation between each neuron of a and each neuron of b at
``blocks.{l}.mlp.hook_post``, all layers and all layer pairs at once (the layers are concatenated into one unit axis,
so one GEMM per chunk covers every layer pair), over every token of every prompt. Our prompts have no BOS or padding
(fixed-length ``TOK1 TOK2 LABEL`` and background sequences), so every position counts.

Per neuron of seed a:
- ``max_corr[a, b]``: its largest correlation with any neuron of seed b, and ``best_match[a, b]`` that neuron;
- ``baseline_max[a, b]``: the same against seed b's activations multiplied, layer by layer, by a random *orthogonal*
  matrix (Haar, via QR with the sign fix). Ours, as SCIENCE.md asks: the reference code used a row-normalised
  Gaussian matrix, which is not a rotation;
- ``mean_corr``, ``mean_baseline`` (means over the other seeds), ``excess_corr = mean_corr - mean_baseline`` and
  ``universal = excess_corr > threshold``;
- ``matched_corr[a, b]``: its correlation with its partner under a one-to-one matching of the two seeds' neurons
  (Hungarian algorithm, scipy, within each layer), a second view that forbids many neurons sharing one best match.

Memory is independent of the number of tokens, and bounded by ``memory_gb``: the float64 cross sums of every seed
pair and of every rotated baseline take (3 pairs + 6 ordered pairs at 3 seeds) x rows x units x 8 bytes, so when all
layers at once would exceed the budget the rows are taken a few layers per pass, each pass a fresh read of the
cached activations (at GPT-2-small width, 36,864 units and 3 seeds, all at once would be ~98 GB; 4 GB allows one
layer per pass, 12 passes). The tiny bundled models take one pass.

Numerics: ``StreamingCorrelation`` shifts each chunk by the first chunk's means and multiplies float32 blocks of
1,024 rows into float64 sums, so neurons with a large mean against their spread stay accurate (raw-moment sums
lose every digit there). Memory is independent of the number of tokens. A dead (constant) neuron has correlation
0 with everything (defined, not NaN), so it is never universal.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from interp.analyzers.base import Analyzer, Needs, Scope, Unit
from interp.config import Options, option
from interp.hooks import mlp_hooks
from interp.results import Result, by_run_step, load_results
from interp.report.series import summarize_scalars


@dataclass(frozen=True)
class UniversalNeuronsConfig(Options):
    threshold: float = option(0.5, ge=0, le=2)   # excess correlation above which a neuron is universal
    chunk_rows: int = option(2048, ge=1)         # prompts per chunk read from the cache
    seed: int = option(0, ge=0)                  # of the random rotations
    matching: bool = True                        # also the one-to-one (Hungarian) matching
    memory_gb: float = option(4.0, gt=0)         # for the float64 cross sums: bounds the layers taken per pass


class UniversalNeuronsResult(Result):
    @property
    def universal(self) -> np.ndarray:
        """[seed, layer, neuron] bool."""
        return self.arrays["universal"]


def haar_rotation(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random orthogonal matrix [n, n]."""
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))[None, :]


def cross_seed_correlations(chunks: Callable[[], Iterable[list[np.ndarray]]] | Iterable[list[np.ndarray]],
                            n_layers: int, seed: int = 0, device: str = "cpu", matching: bool = False,
                            layers_per_pass: int | None = None) -> dict[str, np.ndarray]:
    """Streams chunks (one [token, layer * d_mlp] array per seed) into every seed pair's correlations.

    ``chunks``: a re-iterable (a list, or a function returning a fresh iterator) when it takes more than one pass.
    Each pass correlates the units of ``layers_per_pass`` layers of every seed (rows) with all units of every other
    seed (columns), so the float64 sums take (pairs + ordered pairs) x rows x units x 8 bytes: default, every layer
    in one pass. Row maxima are final after their pass; a pair's column maxima (the other direction) are running
    maxima over passes, so each unordered pair is multiplied once.

    Returns ``max_corr``, ``best_match``, ``baseline_max`` ([seed, other_seed, unit]; the diagonal is NaN / -1) and,
    with ``matching``, ``matched_corr`` (see ``match_layer``)."""
    import torch

    from interp.activations.stats import StreamingCorrelation

    def passes_over():
        if callable(chunks):
            return iter(chunks())
        return iter(chunks)

    if not callable(chunks) and iter(chunks) is chunks and layers_per_pass not in (None, n_layers):
        raise ValueError("several passes need re-iterable chunks (a list, or a function returning an iterator)")
    it = passes_over()
    first = next(it)
    n_seeds, n_units = len(first), first[0].shape[1]
    d = n_units // n_layers
    step = layers_per_pass or n_layers
    rot = _rotations(n_seeds, n_layers, d, seed, device)                                # [layer, d, d] per seed
    pairs = [(a, b) for a in range(n_seeds) for b in range(n_seeds) if a < b]
    ordered = [(a, b) for a in range(n_seeds) for b in range(n_seeds) if a != b]
    out = _Maxima(n_seeds, n_units, d, pairs, matching)

    def rotate(x: torch.Tensor, s: int) -> torch.Tensor:
        return torch.einsum("tld,lde->tle", x.view(len(x), n_layers, d), rot[s]).reshape(len(x), n_units)

    for l0 in range(0, n_layers, step):
        rows = slice(l0 * d, min(n_layers, l0 + step) * d)
        real = {p: StreamingCorrelation() for p in pairs}
        base = {p: StreamingCorrelation() for p in ordered}
        for block in (itertools.chain([first], it) if l0 == 0 else passes_over()):   # streamed, never listed
            xs = [torch.as_tensor(x, dtype=torch.float32, device=device) for x in block]
            for a, b in pairs:
                real[(a, b)].update(xs[a][:, rows], xs[b])
            rotated = [rotate(x, s) for s, x in enumerate(xs)]
            for a, b in ordered:
                base[(a, b)].update(xs[a][:, rows], rotated[b])
        for a, b in pairs:
            out.add_pair(a, b, real.pop((a, b)).result().cpu().numpy(), rows)
        for a, b in ordered:
            out.baseline[a, b, rows] = base.pop((a, b)).result().cpu().numpy().max(1)
    return out.arrays()


def _rotations(n_seeds: int, n_layers: int, d: int, seed: int, device: str) -> list:
    """Per seed, one Haar rotation per layer: [layer, d, d] float32 tensors (seeded: the baseline is reproducible)."""
    import torch

    rng = np.random.default_rng(seed)
    return [torch.as_tensor(np.stack([haar_rotation(d, rng) for _ in range(n_layers)]), dtype=torch.float32,
                            device=device) for _ in range(n_seeds)]


class _Maxima:
    """The arrays ``cross_seed_correlations`` returns, filled pass by pass. Row maxima of a pass are final; column
    maxima (the other direction of a pair) are running maxima over passes."""

    def __init__(self, n_seeds: int, n_units: int, d: int, pairs: list[tuple[int, int]], matching: bool):
        shape = (n_seeds, n_seeds, n_units)
        self.d, self.matching = d, matching
        self.max_corr, self.baseline = np.full(shape, np.nan), np.full(shape, np.nan)
        self.best, self.matched = np.full(shape, -1, dtype=np.int64), np.full(shape, np.nan)
        for a, b in pairs:
            self.max_corr[b, a] = -np.inf

    def add_pair(self, a: int, b: int, c: np.ndarray, rows: slice) -> None:
        """``c``: [rows, all units] correlations of seed a's ``rows`` with every unit of seed b."""
        d = self.d
        self.max_corr[a, b, rows], self.best[a, b, rows] = c.max(1), c.argmax(1)
        col, arg = c.max(0), c.argmax(0) + rows.start
        better = col > self.max_corr[b, a]
        self.max_corr[b, a, better], self.best[b, a, better] = col[better], arg[better]
        for layer in range(rows.start // d, rows.stop // d) if self.matching else ():
            r, k, v = match_layer(c[layer * d - rows.start:(layer + 1) * d - rows.start, layer * d:(layer + 1) * d])
            self.matched[a, b, layer * d + r], self.matched[b, a, layer * d + k] = v, v

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"max_corr": self.max_corr, "best_match": self.best, "baseline_max": self.baseline}
        if self.matching:
            out["matched_corr"] = self.matched
        return out


def match_layer(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching of one layer's neurons of two seeds, maximising total correlation (Hungarian algorithm,
    scipy; O(d_mlp^3), feasible at GPT-2 widths): (rows, their partners, the partners' correlations)."""
    from scipy.optimize import linear_sum_assignment

    r, k = linear_sum_assignment(-block)
    return r, k, block[r, k]


def excess(max_corr: np.ndarray, baseline: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean_corr, mean_baseline, excess_corr), each [seed, unit]: means over the other seeds."""
    mean_corr, mean_base = np.nanmean(max_corr, axis=1), np.nanmean(baseline, axis=1)
    return mean_corr, mean_base, mean_corr - mean_base


class UniversalNeurons(Analyzer):
    name = "universal-neurons"
    description = "cross-seed neuron correlations vs a random-rotation baseline; universal neurons per layer"
    Config = UniversalNeuronsConfig
    Result = UniversalNeuronsResult
    requires = "at least two seeds of a run at the same step (it correlates neurons across seeds)"

    def needs(self, ref) -> Needs:
        return Needs(hooks=mlp_hooks(ref.n_layers), scope=Scope.SEEDS)

    def run(self, unit: Unit, ctx) -> UniversalNeuronsResult:
        refs = sorted(unit.refs, key=lambda r: r.seed)
        n_layers = refs[0].n_layers
        hooks = list(mlp_hooks(n_layers))
        arrays = [[ctx.acts(r, h) for h in hooks] for r in refs]
        d_mlp = arrays[0][0].shape[-1]
        n_units, n = n_layers * d_mlp, len(refs)
        bytes_per_layer = n * (n - 1) * 3 / 2 * d_mlp * n_units * 8        # pairs + ordered pairs, float64
        layers_per_pass = int(max(1, min(n_layers, self.config.memory_gb * 2**30 // bytes_per_layer)))
        out = cross_seed_correlations(lambda: self._chunks(arrays), n_layers, self.config.seed,
                                      device=getattr(ctx, "device", "cpu"), matching=self.config.matching,
                                      layers_per_pass=layers_per_pass)
        mean_corr, mean_base, exc = excess(out["max_corr"], out["baseline_max"])
        universal = exc > self.config.threshold
        shape4 = (len(refs), len(refs), n_layers, d_mlp)
        result = self.new_result(unit)
        result.add("max_corr", out["max_corr"].reshape(shape4), ("seed", "other_seed", "layer", "neuron"))
        result.add("baseline_max", out["baseline_max"].reshape(shape4), ("seed", "other_seed", "layer", "neuron"))
        result.add("best_match", out["best_match"].reshape(shape4), ("seed", "other_seed", "layer", "neuron"))
        if self.config.matching:
            result.add("matched_corr", out["matched_corr"].reshape(shape4), ("seed", "other_seed", "layer", "neuron"))
        result.scalars["layers_per_pass"] = layers_per_pass
        for name, arr in (("mean_corr", mean_corr), ("mean_baseline", mean_base), ("excess_corr", exc),
                          ("universal", universal)):
            result.add(name, arr.reshape(len(refs), n_layers, d_mlp), ("seed", "layer", "neuron"))
        per_layer = universal.reshape(len(refs), n_layers, d_mlp).mean(axis=(0, 2))
        result.scalars.update(seeds=[r.seed for r in refs], universal_fraction=float(universal.mean()),
                              universal_fraction_per_layer=per_layer.tolist(), mean_excess_corr=float(exc.mean()),
                              mean_max_corr=float(mean_corr.mean()), mean_baseline=float(mean_base.mean()))
        return result

    def _chunks(self, arrays) -> Iterator[list[np.ndarray]]:
        """Per chunk of prompts, one [token, layer * neuron] array per seed (tokens = prompt x position)."""
        readers = [[a.chunks(self.config.chunk_rows) for a in per_seed] for per_seed in arrays]
        while True:
            try:
                block = [np.concatenate([next(r) for r in per_seed], axis=-1) for per_seed in readers]
            except StopIteration:
                return
            yield [b.reshape(-1, b.shape[-1]) for b in block]

    def summarize(self, results: list[Result], out_dir) -> dict:
        return summarize_universal(results, out_dir)


def summarize_universal(results: list[Result], out_dir) -> dict:
    """Universal fraction per run and step; figures: max-corr histogram vs baseline, universal fraction per layer vs
    step, and (joined with ``neuron-stats`` when it ran) universal vs other neurons' kurtosis and sparsity."""
    from pathlib import Path

    from interp.report.plots import lines_by_run, pyplot, save

    out_dir = Path(out_dir)
    out = summarize_scalars(results, ("universal_fraction", "mean_excess_corr", "mean_max_corr", "mean_baseline"))
    grouped = by_run_step(results)
    figures = []
    layers: dict[str, tuple[list[int], list[float]]] = {}
    for run, steps in grouped.items():
        n_layers = len(next(iter(steps.values()))[0].scalars["universal_fraction_per_layer"])
        for l in range(n_layers):
            layers[f"{run} L{l}"] = (list(steps), [float(np.mean([r.scalars["universal_fraction_per_layer"][l]
                                                                   for r in rs])) for rs in steps.values()])
    figures.append(lines_by_run(layers, "fraction of universal neurons per layer", "universal fraction",
                                out_dir / "universal_fraction.png"))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(grouped), figsize=(4.5 * len(grouped), 3.5), squeeze=False)
    for ax, (run, steps) in zip(axes[0], grouped.items()):
        last = steps[max(steps)][0]
        ax.hist(np.nanmean(last.arrays["max_corr"], 1).ravel(), bins=40, range=(0, 1), alpha=0.7, label="max corr")
        ax.hist(np.nanmean(last.arrays["baseline_max"], 1).ravel(), bins=40, range=(0, 1), alpha=0.7,
                label="rotated baseline")
        ax.set_title(f"{run}, step {max(steps)}")
        ax.set_xlabel("mean over other seeds of max correlation")
        ax.legend(fontsize=8)
    figures.append(save(fig, out_dir / "max_corr_hist.png"))
    joined = join_neuron_stats(results, out_dir.parent / "neuron-stats")
    if joined:
        figures.append(_draw_join(joined, out_dir / "universal_vs_other.png"))
        out["universal_vs_other"] = joined
    out["figures"] = [str(f) for f in figures]
    out["headline"] = {f"{run} universal fraction / excess corr @ last step":
                       f"{row['universal_fraction']['mean']:.3f} / {row['mean_excess_corr']['mean']:.3f}"
                       for run, d in out["per_run"].items() for row in [d[max(d, key=int)]]}
    return out


JOIN_STATS = ("kurtosis", "skew", "act_freq", "w_in_norm", "w_out_norm", "vocab_cos_kurtosis")


def join_neuron_stats(results: list[Result], stats_dir) -> dict:
    """Per run at its last step: medians of neuron-stats quantities over universal vs other neurons."""
    from pathlib import Path

    stats_dir = Path(stats_dir)
    if not stats_dir.is_dir():
        return {}
    stats = {r.unit_id: r for r in load_results(stats_dir.parent, stats_dir.name)}
    out = {}
    for run, steps in by_run_step(results).items():
        res = steps[max(steps)][0]
        uni, other = {k: [] for k in JOIN_STATS}, {k: [] for k in JOIN_STATS}
        for i, seed in enumerate(res.scalars["seeds"]):
            s = stats.get(f"{run}/seed{seed}/step{max(steps)}")
            if s is None:
                continue
            mask = res.arrays["universal"][i]
            for k in JOIN_STATS:
                uni[k].extend(s.arrays[k][mask].tolist())
                other[k].extend(s.arrays[k][~mask].tolist())
        if other["kurtosis"]:
            out[run] = {k: {"universal": float(np.median(uni[k])) if uni[k] else None,
                            "other": float(np.median(other[k])), "n_universal": len(uni[k])} for k in JOIN_STATS}
    return out


def _draw_join(joined: dict, path):
    from interp.report.plots import pyplot, save

    plt = pyplot()
    keys = ("kurtosis", "act_freq")
    fig, axes = plt.subplots(1, len(keys), figsize=(9, 3.5))
    runs = list(joined)
    x = np.arange(len(runs))
    for ax, k in zip(axes, keys):
        ax.bar(x - 0.2, [joined[r][k]["universal"] or 0 for r in runs], 0.4, label="universal")
        ax.bar(x + 0.2, [joined[r][k]["other"] for r in runs], 0.4, label="other")
        ax.set_xticks(x, runs)
        ax.set_title(f"median {k} (last step)")
        ax.legend(fontsize=8)
    return save(fig, path)
