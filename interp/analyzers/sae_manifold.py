"""``sae-manifold``: do SAEs capture the curved manifolds a model uses, tile them, or dilute them? (SCIENCE.md 4)

On a modular-addition run (a task of kind ``modular_addition`` in the mixture): the activations at ``hook`` at the
label position of every task prompt, and the model's Fourier circles, one per key frequency k of the embedding (the
frequencies whose Fourier signal over the operand ranks exceeds twice the mean), each with theta = 2 pi k c / p for
the answer c = (a + b) mod p (``interp.manifolds``). For each SAE of the sweep ``saes`` (sae-lens ``topk`` and
``relu`` SAEs, ``kind:d_sae:param``) fitted once on those activations, the metrics of ``interp.sae_fit`` per key
frequency: explained variance and L0, latents spent on the circle, subspace capture and principal angle, coverage,
receptive fields, and the fit's kind (subspace / tiling / dilution, rule in ``interp.sae_fit.classify``).

Cost: SAE fitting dominates, so by default only the last step of each seed is analysed (``steps="last"``;
``"all"`` for every step). A PCA view of the activations is stored for every analysed checkpoint (``views``), and
a UMAP view with ``umap=true`` (off by default because its JIT compilation costs ~20 s per process; on at most
2,048 points, where it uses exact neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from interp.analyzers.base import Analyzer, Needs, Scope, Unit
from interp.config import Options, option
from interp.hooks import act_name
from interp.results import Result, by_run_step
from interp.tasks import LABEL_POS, find_task


@dataclass(frozen=True)
class SAEManifoldConfig(Options):
    hook: str = act_name("resid_post", 0)
    saes: tuple[str, ...] = ("topk:2:2", "topk:16:1", "topk:64:1", "relu:32:0.3")
    train_steps: int = option(600, ge=1)
    lr: float = option(3e-3, gt=0)
    max_freqs: int = option(3, ge=1)
    steps: Literal["last", "all"] = "last"   # the last step of each seed, or every step
    views: bool = True           # 2-D PCA view of the activations
    umap: bool = False           # also a UMAP view (off by default: its JIT costs ~20 s per process, FIELD-NOTES)
    seed: int = option(0, ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        from interp.sae_fit import SAESpec
        from interp.trust import safe_hook

        safe_hook(self.hook)   # it becomes a cache file name

        for s in self.saes:   # a bad spec fails here, before any activation is cached
            SAESpec.parse(s)


class SAEManifoldResult(Result):
    def fits(self) -> list[dict]:
        """One dict per (SAE, key frequency): the metrics and ``fit_kind``."""
        return list(self.scalars["fits"])


class SAEManifold(Analyzer):
    name = "sae-manifold"
    description = "SAE fits to a modular-addition model's Fourier circles: subspace capture, tiling or dilution"
    Config = SAEManifoldConfig
    Result = SAEManifoldResult
    requires = "runs with a modular_addition task in their mixture (it fits SAEs to that task's Fourier circles)"

    def needs(self, ref) -> Needs:
        return Needs(hooks=(self.config.hook,), scope=Scope.CHECKPOINT)

    def select(self, refs: list) -> list:
        """Modular-addition runs only; their last step per seed unless ``steps='all'``."""
        refs = [r for r in refs if find_task(r.mixture_spec, "modular_addition") is not None]
        if self.config.steps == "all":
            return refs
        last = {}
        for r in refs:
            if r.step >= last.get((r.run, r.seed), r).step:
                last[(r.run, r.seed)] = r
        return sorted(last.values(), key=lambda r: (r.run, r.seed))

    def run(self, unit: Unit, ctx) -> SAEManifoldResult:
        from interp.manifolds import fourier_circle, key_frequencies
        from interp.sae_fit import (SAESpec, binned_response, encode, fit_sae, manifold_metrics, normalise,
                                     receptive_fields)
        from interp.tasks import build_tasks

        (ref,) = unit.refs
        spec = ref.mixture_spec
        task = build_tasks(spec)[find_task(spec, "modular_addition").name]
        prompts = ctx.prompts(ref)
        sel = prompts.task_id == prompts.task_names.index(task.name)
        acts = np.concatenate([c[:, LABEL_POS] for c in ctx.acts(ref, self.config.hook).chunks()])[sel]
        x = normalise(acts.astype(np.float64))
        rank = {int(t): i for i, t in enumerate(task.operand_tokens)}
        p = len(task.operand_tokens)
        toks = prompts.tokens[sel]
        c = np.array([(rank[int(a)] + rank[int(b)]) % p for a, b in toks[:, :2]])
        w_e = ctx.model(ref).W_E.detach().double().cpu().numpy()[task.operand_tokens]
        freqs, spectrum = key_frequencies(w_e, self.config.max_freqs)
        circles = [fourier_circle(x, c, k, p) for k in freqs]

        result = self.new_result(unit)
        result.add("embedding_spectrum", spectrum, ("frequency",))
        result.add("theta", np.stack([m.theta for m in circles]), ("key_frequency", "prompt"))
        fits = []
        for i, text in enumerate(self.config.saes):
            sae = fit_sae(x, SAESpec.parse(text), steps=self.config.train_steps, lr=self.config.lr,
                          seed=self.config.seed, device=ctx.device)
            codes, recon, w_dec = encode(sae, x)
            rfs, binned = [], []
            for k, m in zip(freqs, circles):
                met = manifold_metrics(x, codes, recon, w_dec, m.theta, m.basis).metrics
                rfs.append(receptive_fields(codes, m.theta))
                binned.append(binned_response(codes, m.theta))
                fits.append({"sae": text, "kind": text.split(":")[0], "d_sae": int(text.split(":")[1]),
                             "frequency": k, **met})
            result.add(f"receptive_field_{i}", np.stack(rfs), ("key_frequency", "stat", "latent"))
            result.add(f"binned_response_{i}", np.stack(binned), ("key_frequency", "theta_bin", "latent"))
            result.add(f"dominant_latent_{i}", np.where(codes.max(1) > 0, codes.argmax(1), -1), ("prompt",))
        if self.config.views:
            result.add("pca", pca2(x), ("prompt", "component"))
        if self.config.umap:
            result.add("umap", umap2(x, self.config.seed), ("prompt", "component"))
        result.scalars.update(key_frequencies=freqs, p=p, n_points=int(len(x)), fits=fits)
        return result

    def summarize(self, results: list[Result], out_dir) -> dict:
        return summarize_sae(results, out_dir)


def pca2(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return xc @ vt[:2].T


def umap2(x: np.ndarray, seed: int, max_points: int = 2048) -> np.ndarray:
    """UMAP embedding [n, 2] (NaN rows beyond ``max_points``, which are left out to keep exact neighbours)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap

        out = np.full((len(x), 2), np.nan)
        idx = np.random.default_rng(seed).permutation(len(x))[:max_points]
        out[idx] = umap.UMAP(n_components=2, random_state=seed, n_neighbors=15).fit_transform(x[idx])
    return out


def summarize_sae(results: list[Result], out_dir) -> dict:
    """Fit table per (run, step, seed); figures: PCA/UMAP views coloured by theta and by dominant latent, receptive
    fields over theta, and capture vs dictionary width."""
    from interp.report.plots import pyplot, save

    out_dir = Path(out_dir)
    per_run: dict = {}
    figures = []
    for run, steps in by_run_step(results).items():
        per_run[run] = {str(step): {str(r.seed): r.scalars["fits"] for r in rs}
                        for step, rs in steps.items()}
        last = sorted(steps[max(steps)], key=lambda r: r.seed)
        r0 = last[0]
        saes = r0.config["saes"]
        widest = max(range(len(saes)), key=lambda i: (saes[i].startswith("topk"), int(saes[i].split(":")[1])))
        plt = pyplot()
        if "pca" in r0.arrays:
            views = [(n, r0.arrays[n]) for n in ("pca", "umap") if n in r0.arrays]
            fig, axes = plt.subplots(len(views), 2, figsize=(9, 4 * len(views)), squeeze=False)
            for row, (name, emb) in zip(axes, views):
                row[0].scatter(emb[:, 0], emb[:, 1], c=r0.arrays["theta"][0], cmap="hsv", s=4)
                row[0].set_title(f"{name.upper()} coloured by theta (k={r0.scalars['key_frequencies'][0]})")
                row[1].scatter(emb[:, 0], emb[:, 1], c=r0.arrays[f"dominant_latent_{widest}"], cmap="tab20", s=4)
                row[1].set_title(f"{name.upper()} coloured by dominant latent of {saes[widest]}")
            figures.append(save(fig, out_dir / f"views_{run}.png"))
        resp = r0.arrays[f"binned_response_{widest}"][0]                               # [bin, latent]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        bins = (np.arange(resp.shape[0]) + 0.5) / resp.shape[0] * 2 * np.pi
        for j in np.flatnonzero(resp.max(0) > 0):
            ax.plot(bins, resp[:, j], lw=1)
        ax.set_xlabel(f"theta (k={r0.scalars['key_frequencies'][0]})")
        ax.set_ylabel("mean latent activation")
        ax.set_title(f"{run}: receptive fields of {saes[widest]}")
        figures.append(save(fig, out_dir / f"receptive_fields_{run}.png"))
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for kind in sorted({f["kind"] for f in r0.scalars["fits"]}):
            rows = [f for r in last for f in r.scalars["fits"] if f["kind"] == kind]
            widths = sorted({f["d_sae"] for f in rows})
            for ax, key in zip(axes, ("subspace_capture", "latents_on_manifold")):
                ax.plot(widths, [np.mean([f[key] for f in rows if f["d_sae"] == w]) for w in widths], marker="o",
                        label=kind)
                ax.set_xscale("log", base=2)
                ax.set_xlabel("dictionary width d_sae")
                ax.set_title(key.replace("_", " "))
        axes[0].legend()
        figures.append(save(fig, out_dir / f"capture_vs_width_{run}.png"))
    headline = {}
    for run, steps in per_run.items():
        last = steps[max(steps, key=int)]
        kinds: dict[str, list[str]] = {}
        for fits in last.values():
            for f in fits:
                kinds.setdefault(f["sae"], []).append(f["fit_kind"])
        for sae, ks in kinds.items():
            headline[f"{run} {sae} fit kinds"] = ", ".join(f"{k} x{ks.count(k)}" for k in sorted(set(ks)))
    return {"per_run": per_run, "figures": [str(f) for f in figures], "headline": headline}
