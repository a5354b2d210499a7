"""Do SAEs tile the bundled modular-addition models' own Fourier circles? (Goodfire, arXiv 2604.28119; Michaud et
al. on tiling)

Two steps, both on the bundled run ``modadd`` (p = 59, one layer, d_model 64, d_mlp 256; 3 seeds), on the
held-out prompts the analyzers see (the test split, 1,741 of the p^2 pairs):

1. Where are the circles clean? For each hook (the operand's embedding; ``blocks.0.hook_resid_mid``,
   ``blocks.0.mlp.hook_post`` and ``blocks.0.hook_resid_post`` at the label position), step and seed: the share of
   the centred variance explained by exact circles ``mean + cos(theta_k) u + sin(theta_k) v`` of the key
   frequencies k (those of ``interp.maths.manifolds.key_frequencies``, the ``fourier-competition`` rule), with
   theta_k = 2 pi k c / p, c the answer (a + b) mod p (the operand a for the embedding), and the share explained by
   the answer at all (per-answer means).
2. At the chosen site, the ``sae-manifold`` analyzer itself (``interp.analyze`` with ``saes`` and ``hook`` set, as
   ``--set sae-manifold.saes=...`` would) over a sweep of TopK (k = 1) widths 4-64, a 2-latent TopK and ReLU SAEs;
   the fit metrics on each seed's strongest circle, the receptive fields, and the PCA views it stores.

    python analyses/sae_tiling.py --out analyses/results/sae_tiling      # ~2 minutes on 2 busy cores

Writes ``sae_tiling.json`` (site table, every fit, the per-width summary with seed spread) and the figures
``sites.png``, ``receptive_fields.png``, ``width_sweep.png``, ``pca_views.png``, ``in_plane.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

HOOKS = ("hook_embed", "blocks.0.hook_resid_mid", "blocks.0.mlp.hook_post", "blocks.0.hook_resid_post")
SITE = "blocks.0.hook_resid_post"
TOPK_WIDTHS = (4, 8, 16, 32, 64)
SWEEP = ("topk:2:2", *(f"topk:{w}:1" for w in TOPK_WIDTHS), "relu:16:0.3", "relu:32:0.3", "relu:64:0.3")
SHOWN = ("topk:8:1", "topk:16:1", "topk:64:1", "relu:32:0.3")   # receptive-field panels
STEPS = (100, 316, 1000)


def circle_shares(x: np.ndarray, c: np.ndarray, freqs: list[int], p: int) -> tuple[list[float], float]:
    """Share of the centred variance of x [n, d] explained by the exact circle of each frequency (least squares on
    cos, sin of 2 pi k c / p), and by c itself (per-value means), float64."""
    xc = x - x.mean(0)
    total = (xc**2).sum()
    shares = []
    for k in freqs:
        design = np.stack([np.cos(2 * np.pi * k * c / p), np.sin(2 * np.pi * k * c / p)], 1)
        coef, *_ = np.linalg.lstsq(design, xc, rcond=None)
        shares.append(float(((design @ coef) ** 2).sum() / total))
    means = np.zeros((p, x.shape[1]))
    np.add.at(means, c, xc)
    means /= np.maximum(np.bincount(c, minlength=p), 1)[:, None]
    return shares, float((means[c] ** 2).sum() / total)


def site_survey(series) -> list[dict]:
    """One row per (seed, step, hook): the key frequencies' circle shares and the answer's share."""
    import torch

    from interp.checkpoints.loading import load_ref
    from interp.maths.manifolds import key_frequencies
    from interp.toys.tasks import LABEL_POS, build_tasks, find_task

    rows = []
    for ref in series.refs(run="modadd"):
        if ref.step not in STEPS:
            continue
        task = build_tasks(ref.mixture_spec)[find_task(ref.mixture_spec, "modular_addition").name]
        ops = np.asarray(task.operand_tokens)
        p, rank = len(ops), {int(t): i for i, t in enumerate(ops)}
        prompts = task.split("test")
        a = np.array([rank[int(t)] for t in prompts[:, 0]])
        c = (a + np.array([rank[int(t)] for t in prompts[:, 1]])) % p
        model = load_ref(ref, device="cpu")
        with torch.inference_mode():
            _, cache = model.run_with_cache(torch.as_tensor(prompts), names_filter=lambda n: n in HOOKS)
        freqs, _ = key_frequencies(model.W_E.detach().double().numpy()[ops], 3)
        for hook in HOOKS:
            # the embedding of operand a (position 0) is a function of a alone: its circles are in a, over p points
            x = cache[hook][:, 0 if hook == "hook_embed" else LABEL_POS].double().numpy()
            shares, answer = circle_shares(x, a if hook == "hook_embed" else c, freqs, p)
            row = {"seed": ref.seed, "step": ref.step, "hook": hook, "key_frequencies": freqs,
                   "circle_shares": shares, "all_circles": float(sum(shares)), "parameter_share": answer,
                   "parameter": "a" if hook == "hook_embed" else "(a+b) mod p",
                   "distinct_points": p if hook == "hook_embed" else int(len(x))}
            if hook != "hook_embed":   # the operands' own circles, which the model has before it has the answer's
                row["operand_circles"] = float(sum(circle_shares(x, a, freqs, p)[0])
                                               + sum(circle_shares(x, (c - a) % p, freqs, p)[0]))
            rows.append(row)
    return rows


def run_sweep(work: Path) -> list:
    """The sae-manifold analyzer over SWEEP at SITE, last step of each modadd seed; its results, by seed."""
    import interp
    from interp.results import load_results

    interp.analyze(analyzers=["sae-manifold"], settings={"sae-manifold": {"hook": SITE, "saes": list(SWEEP)}},
                   options=interp.RunOptions(out_dir=work, device="cpu", progress=False, runs=("modadd",)))
    return sorted(load_results(work, "sae-manifold"), key=lambda r: r.seed)


def fit_rows(results: list) -> list[dict]:
    rows = []
    for r in results:
        strongest = r.scalars["key_frequencies"][0]
        for f in r.scalars["fits"]:
            rows.append({"seed": r.seed, "step": r.step, "strongest": f["frequency"] == strongest, **f})
    return rows


def followed_circle(results: list) -> dict:
    """For each TopK k=1 SAE and seed: the frequency k' (1..(p-1)/2) on whose circle the latents' firing sets are
    most concentrated (mean resultant length of theta_k' = 2 pi k' c / p over each latent's prompts, weighted by
    their count), and that length at each key frequency. With k = 1 the active latent is the dominant one."""
    out = {}
    for r in results:
        p, keys = r.scalars["p"], r.scalars["key_frequencies"]
        kc = np.rint(np.asarray(r.arrays["theta"][0]) * p / (2 * np.pi)).astype(int) % p
        c = (kc * pow(keys[0], -1, p)) % p                      # the answer, back from theta of the first circle
        for i, sae in enumerate(r.config["saes"]):
            if not (sae.startswith("topk:") and sae.endswith(":1")):
                continue
            dom = np.asarray(r.arrays[f"dominant_latent_{i}"])
            fired = dom >= 0
            lengths = []
            for kp in range(1, (p - 1) // 2 + 1):
                z = np.exp(2j * np.pi * kp * c / p)
                lengths.append(sum(abs(z[dom == j].sum()) for j in np.unique(dom[fired])) / max(fired.sum(), 1))
            best = int(np.argmax(lengths)) + 1
            out.setdefault(sae, {})[str(r.seed)] = {
                "followed_frequency": best, "length": round(float(lengths[best - 1]), 3),
                "length_at_keys": {str(k): round(float(lengths[k - 1]), 3) for k in keys}}
    return out


def width_summary(rows: list[dict]) -> dict:
    """Per SAE, on each seed's strongest circle: mean, std and per-seed values of the tiling measures."""
    out = {}
    for sae in SWEEP:
        mine = sorted((f for f in rows if f["sae"] == sae and f["strongest"]), key=lambda f: f["seed"])
        entry = {"fit_kinds": [f["fit_kind"] for f in mine], "frequencies": [f["frequency"] for f in mine]}
        for key in ("latents_on_manifold", "coverage", "median_rf_width", "centre_uniformity_p", "explained_variance",
                    "subspace_capture", "l0"):
            vals = np.array([f[key] for f in mine], dtype=float)
            entry[key] = {"per_seed": [round(float(v), 4) for v in vals], "mean": round(float(np.nanmean(vals)), 4),
                          "std": round(float(np.nanstd(vals)), 4)}
        out[sae] = entry
    return out


def receptive_panels(results: list, out: Path) -> None:
    """Rows: seeds; columns: SAEs of SHOWN. Each latent on the strongest circle is one row of the heatmap (its mean
    activation per theta bin, scaled to its maximum), latents sorted by receptive-field centre."""
    from interp.report.plots import pyplot, save

    plt = pyplot()
    saes = list(results[0].config["saes"])
    fig, axes = plt.subplots(len(results), len(SHOWN), figsize=(3.2 * len(SHOWN), 2.7 * len(results)),
                             squeeze=False)
    for i, r in enumerate(results):
        k = r.scalars["key_frequencies"][0]
        for j, sae in enumerate(SHOWN):
            idx = saes.index(sae)
            fit = next(f for f in r.scalars["fits"] if f["sae"] == sae and f["frequency"] == k)
            resp = np.asarray(r.arrays[f"binned_response_{idx}"][0])             # [bin, latent]
            centre = np.asarray(r.arrays[f"receptive_field_{idx}"][0][0])         # [latent]
            live = np.flatnonzero(resp.max(0) > 0)
            order = live[np.argsort(centre[live])]
            img = resp[:, order].T / resp[:, order].max(0)[:, None]
            ax = axes[i, j]
            ax.imshow(img, aspect="auto", cmap="magma", interpolation="nearest",
                      extent=(0, 2 * np.pi, len(order) - 0.5, -0.5))
            ax.set_title(f"seed {r.seed}, k={k}: {sae}\n{fit['fit_kind']}, {fit['latents_on_manifold']} on circle, "
                         f"coverage {fit['coverage']:.2f}", fontsize=8)
            ax.set_xticks([0, np.pi, 2 * np.pi], ["0", "π", "2π"])
            if i == len(results) - 1:
                ax.set_xlabel("theta on the strongest circle")
            if j == 0:
                ax.set_ylabel("latent (by centre)")
    fig.suptitle("Receptive fields on theta at resid_post (label position), step 1000: each row one latent's mean "
                 "activation, scaled to its peak", fontsize=9)
    save(fig, out / "receptive_fields.png")


def width_figure(summary: dict, rows: list[dict], out: Path) -> None:
    from interp.report.plots import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    panels = (("latents_on_manifold", "latents on the strongest circle"), ("coverage", "coverage of theta"),
              ("median_rf_width", "median receptive-field width (rad)"))
    seeds = sorted({f["seed"] for f in rows})
    for ax, (key, label) in zip(axes, panels):
        for kind, widths, colour in (("topk", TOPK_WIDTHS, "C0"), ("relu", (16, 32, 64), "C3")):
            names = [f"topk:{w}:1" if kind == "topk" else f"relu:{w}:0.3" for w in widths]
            for s in seeds:
                ax.plot(widths, [summary[n][key]["per_seed"][seeds.index(s)] for n in names], color=colour, lw=0.7,
                        alpha=0.5, marker=".")
            ax.plot(widths, [summary[n][key]["mean"] for n in names], color=colour, lw=2.2,
                    label="TopK k=1" if kind == "topk" else "ReLU L1 0.3")
        if key == "latents_on_manifold":
            ax.plot(TOPK_WIDTHS, TOPK_WIDTHS, color="grey", ls=":", lw=1, label="all latents")
            ax.axhline(59, color="grey", ls="--", lw=0.8, label="p = 59 answers")
        if key == "median_rf_width":
            ax.plot(TOPK_WIDTHS, [2 * np.pi / w / np.sqrt(12) for w in TOPK_WIDTHS], color="grey", ls=":", lw=1,
                    label="even tiling: 2π/(w√12)")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dictionary width d_sae")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("resid_post, step 1000, each seed's strongest circle (thin: seeds, thick: mean of 3)", fontsize=9)
    save(fig, out / "width_sweep.png")


def views_figure(results: list, out: Path) -> None:
    from interp.report.plots import pyplot, save

    plt = pyplot()
    saes = list(results[0].config["saes"])
    idx = saes.index("topk:16:1")
    fig, axes = plt.subplots(2, len(results), figsize=(3.6 * len(results), 7), squeeze=False)
    for i, r in enumerate(results):
        pca, theta = np.asarray(r.arrays["pca"]), np.asarray(r.arrays["theta"][0])
        k = r.scalars["key_frequencies"][0]
        dom = np.asarray(r.arrays[f"dominant_latent_{idx}"])
        axes[0, i].scatter(pca[:, 0], pca[:, 1], c=theta, cmap="twilight", s=3)
        axes[0, i].set_title(f"seed {r.seed}: coloured by theta (k={k})", fontsize=9)
        axes[1, i].scatter(pca[:, 0], pca[:, 1], c=dom, cmap="tab20", s=3)
        axes[1, i].set_title(f"seed {r.seed}: coloured by the active latent of topk:16:1", fontsize=9)
        for ax in axes[:, i]:
            ax.set_xlabel("PC 1")
            ax.set_ylabel("PC 2")
            ax.set_aspect("equal", "datalim")
    fig.suptitle("PCA of resid_post at the label position (step 1000, 1,741 held-out prompts)", fontsize=9)
    save(fig, out / "pca_views.png")


def in_plane_figure(results: list, out: Path, sae: str = "topk:32:1") -> None:
    """Per seed: each live latent's share of its write in the first vs the second circle's plane."""
    from interp.report.plots import pyplot, save

    plt = pyplot()
    idx = list(results[0].config["saes"]).index(sae)
    fig, axes = plt.subplots(1, len(results), figsize=(3.4 * len(results), 3.5), squeeze=False)
    for ax, r in zip(axes[0], results):
        k = r.scalars["key_frequencies"]
        share = np.asarray(r.arrays[f"in_plane_{idx}"])                          # [key_frequency, latent]
        live = np.flatnonzero(np.asarray(r.arrays[f"binned_response_{idx}"][0]).max(0) > 0)
        ax.scatter(share[0, live], share[1, live], s=12)
        ax.axvline(0.5, color="grey", ls=":", lw=1)
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.plot([0, 1], [1, 0], color="grey", lw=0.6)
        sh = r.scalars["circle_shares"]
        ax.set_title(f"seed {r.seed}: circles k={k[0]} ({sh[0]:.2f} of the variance), k={k[1]} ({sh[1]:.2f})",
                     fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel(f"share of the write in the k={k[0]} plane")
        ax.set_ylabel(f"share in the k={k[1]} plane")
    fig.suptitle(f"What each live latent of {sae} writes (from the data mean): a latent counts for a circle when >= "
                 "0.5 of it lies in that circle's plane (dotted)", fontsize=8)
    save(fig, out / "in_plane.png")


def sites_figure(sites: list[dict], out: Path) -> None:
    from interp.report.plots import pyplot, save

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    panels = (("all_circles", "key circles of the parameter (a for embed, the answer a+b after)"),
              ("operand_circles", "key circles of the operands a and b (label position)"),
              ("parameter_share", "the parameter itself (per-value means)"))
    for ax, (key, label) in zip(axes, panels):
        for h, hook in enumerate(HOOKS):
            for s, step in enumerate(STEPS):
                vals = [r[key] for r in sites if r["hook"] == hook and r["step"] == step and key in r]
                if not vals:
                    continue
                x = h + (s - 1) * 0.27
                ax.bar(x, np.mean(vals), width=0.25, color=f"C{s}", label=f"step {step}" if h == 1 else None)
                ax.scatter([x] * len(vals), vals, color="k", s=6, zorder=3)
        ax.set_xticks(range(len(HOOKS)), ["embed (a)", "resid_mid", "mlp_post", "resid_post"])
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("share of the centred variance")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Where the modular-addition models carry their Fourier circles (held-out prompts; bars: mean of 3 "
                 "seeds, dots: seeds)", fontsize=9)
    save(fig, out / "sites.png")


def strict(x):
    """NaN (no latent on a circle: no receptive-field width) as null, so that any JSON reader takes the file."""
    if isinstance(x, dict):
        return {k: strict(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [strict(v) for v in x]
    if isinstance(x, float) and x != x:
        return None
    return x


def main() -> None:
    import torch

    import interp

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=None, help="the analyzer's output folder (default: a temporary one)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)   # tiny SAEs: a second thread only spins on a shared machine
    torch.manual_seed(0)
    started = time.perf_counter()
    sites = site_survey(interp.load_series())
    with tempfile.TemporaryDirectory() as tmp:
        results = run_sweep(args.work or Path(tmp))
        rows = fit_rows(results)
        summary = width_summary(rows)
        receptive_panels(results, args.out)
        width_figure(summary, rows, args.out)
        views_figure(results, args.out)
        in_plane_figure(results, args.out)
        followed = followed_circle(results)
    sites_figure(sites, args.out)
    doc = {"site": SITE, "step": results[0].step, "sweep": list(SWEEP), "n_points": results[0].scalars["n_points"],
           "sites": sites, "width_summary": summary, "followed_circle": followed,
           "circles": {str(r.seed): dict(zip(map(str, r.scalars["key_frequencies"]), r.scalars["circle_shares"]))
                       for r in results}, "fits": rows,
           "wall_s": round(time.perf_counter() - started, 1)}
    (args.out / "sae_tiling.json").write_text(json.dumps(strict(doc), indent=1, default=float))
    for sae, e in summary.items():
        print(f"{sae:12s} k {e['frequencies']} kinds {e['fit_kinds']} on {e['latents_on_manifold']['per_seed']} "
              f"cov {e['coverage']['per_seed']} width {e['median_rf_width']['per_seed']} "
              f"follows {[v['followed_frequency'] for v in followed.get(sae, {}).values()]}")


if __name__ == "__main__":
    main()
