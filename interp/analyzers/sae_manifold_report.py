"""Series summary and figures of ``sae-manifold``: fit table per (run, step, seed), PCA/UMAP views coloured by
theta and by dominant latent, receptive fields over theta, and capture vs dictionary width."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from interp.analyzers.base import Result, by_run_step


def summarize_sae(results: list[Result], out_dir) -> dict:
    from interp.report.plots import pyplot, save

    out_dir = Path(out_dir)
    per_run: dict = {}
    figures = []
    for run, steps in by_run_step(results).items():
        per_run[run] = {str(step): {str(r.provenance["checkpoints"][0]["seed"]): r.scalars["fits"] for r in rs}
                        for step, rs in steps.items()}
        last = sorted(steps[max(steps)], key=lambda r: r.provenance["checkpoints"][0]["seed"])
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
