"""``sae-manifold`` over a series: the fit table, headline rows and figure specs (data and captions only;
``interp.report`` draws them)."""

from __future__ import annotations

import numpy as np

from interp.report import headline as H
from interp.report.figures import Line, Lines, Points, Scatter
from interp.results import Result, by_run_step

PAPER = ("Goodfire (arXiv 2604.28119) find that as dictionary width grows or sparsity tightens, SAEs move from "
         "capturing a manifold as a subspace to tiling it with local latents, and that real SAEs dilute it over "
         "many overlapping latents.")
TABLE_KEYS = ("fit_kind", "latents_on_manifold", "subspace_capture", "coverage", "explained_variance", "l0")


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Fit table per (run, step, seed); figures: PCA/UMAP views coloured by theta and by dominant latent, receptive
    fields over theta, and capture vs dictionary width."""
    per_run: dict = {}
    figures = []
    for run, steps in by_run_step(results).items():
        per_run[run] = {str(step): {str(r.seed): r.scalars["fits"] for r in rs} for step, rs in steps.items()}
        last = sorted(steps[max(steps)], key=lambda r: r.seed)
        figures += [views_figure(run, last[0]), receptive_figure(run, last[0]), width_figure(run, last)]
    headline = []
    for run, steps in by_run_step(results).items():
        last = steps[max(steps)]
        kinds: dict[str, list[str]] = {}
        strongest: dict[str, list[str]] = {}
        for r in last:
            k0 = r.scalars["key_frequencies"][0]
            for f in r.scalars["fits"]:
                kinds.setdefault(f["sae"], []).append(f["fit_kind"])
                if f["frequency"] == k0:
                    strongest.setdefault(f["sae"], []).append(f["fit_kind"])
        for sae, ks in kinds.items():
            headline.append(H.text(run, f"{sae} fit kinds", f"strongest circle: {counts(strongest.get(sae, []))}; "
                                   f"all key circles: {counts(ks)}",
                                   note=f"over {len(last)} seeds (strongest circle at the hook) and their key "
                                        "frequencies"))
    return {"per_run": per_run, "figures": [f.to_json() for f in figures], "headline": headline,
            "tables": [fit_table(per_run)]}


def counts(kinds: list[str]) -> str:
    return ", ".join(f"{k} x{kinds.count(k)}" for k in sorted(set(kinds))) or "none"


def widest(r0: Result) -> int:
    saes = r0.config["saes"]
    return max(range(len(saes)), key=lambda i: (saes[i].startswith("topk"), int(saes[i].split(":")[1])))


def views_figure(run: str, r0: Result) -> Scatter:
    saes, w, k = r0.config["saes"], widest(r0), r0.scalars["key_frequencies"]
    panels = []
    for name in ("pca", "umap"):
        if name in r0.arrays:
            emb = r0.arrays[name]
            panels += [Points(f"{name.upper()}, coloured by theta (k={k[0]})", emb[:, 0], emb[:, 1],
                              r0.arrays["theta"][0], "theta", cyclic=True),
                       Points(f"{name.upper()}, coloured by the dominant latent of {saes[w]}", emb[:, 0], emb[:, 1],
                              r0.arrays[f"dominant_latent_{w}"], "latent", categorical=True)]
    return Scatter(f"views_{run}", f"{run}: activations in 2-D, coloured by the circle's angle and by the SAE latent "
                   f"that fires most (seed {r0.seed}, step {r0.step})", panels=panels, x_label="component 1",
                   y_label="component 2", skip_reason="" if panels else "no 2-D view stored (views=false)",
                   caption="Each point is one prompt's activation at the label position. Left: coloured by theta of "
                           "the strongest key frequency; a ring ordered by colour is the Fourier circle. Right: "
                           "coloured by which latent of the widest SAE fires most (grey: none). Latents that each "
                           f"own one arc of the ring tile it; one colour over the whole ring is subspace capture. "
                           f"{PAPER}")


def receptive_figure(run: str, r0: Result) -> Lines:
    saes, w, k = r0.config["saes"], widest(r0), r0.scalars["key_frequencies"][0]
    resp = np.asarray(r0.arrays[f"binned_response_{w}"][0])                     # [bin, latent]
    bins = ((np.arange(resp.shape[0]) + 0.5) / resp.shape[0] * 2 * np.pi).tolist()
    lines = [Line(bins, resp[:, j].tolist(), f"latent {j}") for j in np.flatnonzero(resp.max(0) > 0)]
    return Lines(f"receptive_fields_{run}", f"{run}: receptive fields of {saes[w]}'s latents on the k={k} circle "
                 f"(seed {r0.seed})", x_label=f"theta of the k={k} circle (radians)",
                 y_label="mean latent activation", lines=lines, log_x=False, group_title="latent",
                 skip_reason="" if lines else f"no latent of {saes[w]} fires on this circle",
                 caption="Each line is one latent's mean activation in bins of theta around the circle. Narrow, "
                         "evenly spaced bumps are tiling; one latent over the whole circle (or a pair in quadrature) "
                         f"is subspace capture; many broad overlapping bumps are dilution. {PAPER}")


def width_figure(run: str, last: list[Result]) -> Lines:
    lines = []
    kinds = sorted({f["kind"] for r in last for f in r.scalars["fits"]})
    for kind in kinds:
        for key, panel in (("subspace_capture", "subspace capture"), ("latents_on_manifold", "latents on the circle")):
            rows = [f for r in last for f in r.scalars["fits"] if f["kind"] == kind]
            widths = sorted({f["d_sae"] for f in rows})
            for r in last:
                mine = [f for f in r.scalars["fits"] if f["kind"] == kind]
                lines.append(Line(widths, [float(np.mean([f[key] for f in mine if f["d_sae"] == w])) for w in widths],
                                  kind, panel, seed=r.seed))
            lines.append(Line(widths, [float(np.mean([f[key] for f in rows if f["d_sae"] == w])) for w in widths],
                              kind, panel, n_seeds=len(last)))
    return Lines(f"capture_vs_width_{run}", f"{run}: subspace capture and latents spent on the circles, by "
                 f"dictionary width", x_label="dictionary width d_sae", lines=lines, group_title="SAE kind",
                 y_labels={"subspace capture": "fraction of the circle's variance", "latents on the circle": "latents"},
                 caption="Left: the fraction of the circles' variance explained by the span of the latents that "
                         "fire on them (1: captured as a subspace). Right: how many latents fire on a circle. Mean "
                         "over key frequencies; thin lines are single seeds, thick their mean; colour is the SAE "
                         f"kind. {PAPER}")


def fit_table(per_run: dict) -> dict:
    rows = [[run, int(step), int(seed), f["sae"], f["frequency"], *[f.get(k) for k in TABLE_KEYS]]
            for run, steps in per_run.items() for step, seeds in steps.items() for seed, fits in seeds.items()
            for f in fits]
    return {"title": "Every SAE fit: one row per (run, step, seed, SAE, key frequency)",
            "columns": ["run", "step", "seed", "SAE", "frequency k", *TABLE_KEYS], "rows": rows}
