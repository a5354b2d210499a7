"""``neuron-roles`` over a series: role counts per layer and step (mean and spread over seeds), their curves over
training, the skew-kurtosis plane and the entropy-neuron plane at the last step, and headline counts."""

from __future__ import annotations

from typing import Any

import numpy as np

from interp.analyzers.neuron_roles.roles import ROLES
from interp.report import headline as H
from interp.report.figures import Lines, Points, Scatter, seed_lines
from interp.report.series import summarize_scalars
from interp.results import Result, by_run_step

MAX_POINTS = 6000   # per scatter panel: every flagged neuron, then an even stride of the others (a page stays light)
LEGEND = ", ".join(f"{i + 1} {r}" for i, r in enumerate(ROLES))


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Per run and step: each role's count over all layers (``per_run``, mean and spread over seeds) and per layer
    (``per_layer``); figure specs; the last step's counts as headline rows."""
    out = summarize_scalars(results, tuple(f"n_{r}" for r in ROLES))
    out["per_layer"] = layer_counts(results)
    out["figures"] = [f.to_json() for f in (*count_figures(out["per_layer"]), skew_kurtosis(results),
                                            entropy_plane(results))]
    out["headline"] = []
    for run, steps in out["per_run"].items():
        step = max(steps, key=int)
        for role in ROLES:
            cell = steps[step].get(f"n_{role}")
            if cell:
                out["headline"].append(H.seeds(run, f"{role} neurons (all layers), step {step}", cell["per_seed"],
                                               1, cell["mean"]))
    return out


def layer_counts(results: list[Result]) -> dict[str, dict[str, dict[str, list[dict[str, Any]]]]]:
    """{run: {step: {role: [per layer {"mean", "std", "per_seed"}]}}} from each result's ``counts``."""
    out: dict = {}
    for run, steps in by_run_step(results).items():
        out[run] = {}
        for step, rs in sorted(steps.items()):
            row = {}
            for role in ROLES:
                per_seed = {str(r.seed): r.scalars["counts"][role] for r in rs if role in r.scalars.get("counts", {})}
                if not per_seed:
                    continue
                table = np.asarray(list(per_seed.values()), dtype=float)     # [seed, layer]
                std = table.std(0, ddof=1) if len(table) > 1 else np.zeros(table.shape[1])   # sample std
                row[role] = [{"mean": float(table[:, i].mean()), "std": float(std[i]),
                              "per_seed": {s: int(c[i]) for s, c in per_seed.items()}}
                             for i in range(table.shape[1])]
            out[run][str(step)] = row
    return out


def count_figures(per_layer: dict) -> list[Lines]:
    """One figure per role: its count in each layer over training, a panel per run, a colour per layer."""
    figs = []
    for role in ROLES:
        lines = []
        for run, steps in sorted(per_layer.items()):
            n_layers = max((len(row[role]) for row in steps.values() if role in row), default=0)
            for layer in range(n_layers):
                per_seed: dict[str, tuple[list, list]] = {}
                for step, row in sorted(steps.items(), key=lambda kv: int(kv[0])):
                    if role in row:
                        for seed, c in row[role][layer]["per_seed"].items():
                            xs, ys = per_seed.setdefault(seed, ([], []))
                            xs.append(int(step))
                            ys.append(c)
                lines += seed_lines(per_seed, f"layer {layer}", panel=run)
        figs.append(Lines(f"counts_{role}", f"{role.capitalize()} neurons per layer over training", lines=lines,
                          y_label=f"{role} neurons", group_title="layer", caption=_CAPTIONS[role] + _HOW))
    return figs


def _last(results: list[Result]) -> dict[str, tuple[int, list[Result]]]:
    """{run: (last step, its results)}."""
    return {run: (max(steps), steps[max(steps)]) for run, steps in by_run_step(results).items()}


def _role_code(r: Result) -> np.ndarray:
    """[layer, neuron] 0 for no role, else 1 + the index in ROLES of the first role the neuron has."""
    code = np.zeros(r.arrays["w_out_norm"].shape, dtype=np.int64)
    for i, role in reversed(list(enumerate(ROLES))):
        code[r.arrays[f"is_{role}"]] = i + 1
    return code


def _thin(x: np.ndarray, y: np.ndarray, c: np.ndarray, keep: np.ndarray) -> tuple[list, list, list, bool]:
    """Every ``keep`` point, then an even stride of the others up to MAX_POINTS; whether any was left out."""
    rest = np.flatnonzero(~keep)
    room = max(0, MAX_POINTS - int(keep.sum()))
    if len(rest) > room:
        rest = rest[np.linspace(0, len(rest) - 1, room).astype(int)] if room else rest[:0]
    idx = np.sort(np.concatenate([np.flatnonzero(keep), rest]))
    return x[idx].tolist(), y[idx].tolist(), c[idx].tolist(), len(idx) < len(x)


def skew_kurtosis(results: list[Result]) -> Scatter:
    """Each neuron's skew and log10 kurtosis of v at the last step, a panel per run and layer, seeds pooled."""
    panels, notes = [], []
    for run, (step, rs) in sorted(_last(results).items()):
        for layer in range(rs[0].arrays["vocab_skew"].shape[0]):
            skew = np.concatenate([r.arrays["vocab_skew"][layer] for r in rs])
            kurt = np.concatenate([r.arrays["vocab_kurtosis"][layer] for r in rs])
            code = np.concatenate([_role_code(r)[layer] for r in rs])
            with np.errstate(divide="ignore"):
                logk = np.where(kurt > 0, np.log10(np.where(kurt > 0, kurt, 1.0)), np.nan)
            x, y, c, thinned = _thin(skew, logk, code, code > 0)
            title = f"{run}, layer {layer}, step {step} ({len(rs)} seeds)"
            panels.append(Points(title, x, y, c, color_title="role", categorical=True))
            if thinned:
                notes.append(f"{title}: every role neuron and an even sample of the others, {MAX_POINTS} at most")
    return Scatter("skew_kurtosis", "Skew and kurtosis of each neuron's vocabulary effect, last step",
                   panels=panels, notes=notes, x_label="skew of v over the vocabulary",
                   y_label="log10 kurtosis of v (Gaussian: 0.48)", caption=_SCATTER)


def entropy_plane(results: list[Result]) -> Scatter:
    """Each neuron's |w_out| against its share in W_U's weakest directions at the last step, a panel per run."""
    panels, notes = [], []
    for run, (step, rs) in sorted(_last(results).items()):
        norm = np.concatenate([r.arrays["w_out_norm"].ravel() for r in rs])
        share = np.concatenate([r.arrays["null_share"].ravel() for r in rs])
        layer = np.concatenate([np.repeat(np.arange(r.arrays["w_out_norm"].shape[0]), r.arrays["w_out_norm"].shape[1])
                                for r in rs])
        keep = np.concatenate([r.arrays["is_entropy"].ravel() for r in rs])
        x, y, c, thinned = _thin(norm, share, layer, keep)
        title = f"{run}, step {step} ({len(rs)} seeds)"
        panels.append(Points(title, x, y, c, color_title="layer", categorical=True))
        if thinned:
            notes.append(f"{title}: every entropy neuron and an even sample of the others, {MAX_POINTS} at most")
    return Scatter("entropy_plane", "Output-weight norm against the share written into the unembedding's null space",
                   panels=panels, notes=notes, x_label="|w_out| (LayerNorm models: centred)",
                   y_label="share of |w_out|^2 in the weakest directions of W_U", caption=_ENTROPY)


_HOW = (" Thin lines are single seeds, the thick line their mean; colour is the layer, a panel per run. A count "
        "that rises in every seed at the same step is a role the training reliably builds; one seed alone is not.")

_CAPTIONS = {
    "prediction": "Neurons whose vocabulary effect v = W_U^T w_out (final LayerNorm gain folded in, W_U centred over "
                  "the vocabulary) is heavy-tailed (kurtosis above kurtosis_min, 10) with positive skew: they raise "
                  "a few tokens. Gurnee et al. (arXiv 2401.12181) find them rising through the second half of GPT-2's "
                  "layers.",
    "suppression": "Neurons whose vocabulary effect is heavy-tailed with negative skew: they lower a few tokens. "
                   "Gurnee et al. (arXiv 2401.12181) find them dominating the last layers of every GPT-2 seed, after "
                   "the prediction neurons.",
    "partition": "Neurons whose vocabulary effect is not heavy-tailed but has a large variance (partition_var_ratio "
                 "times a random direction's) and a bimodality coefficient above partition_bimodality: they split "
                 "the vocabulary into two sets, one raised and one lowered (Gurnee et al., arXiv 2401.12181, "
                 "describe such partition neurons in GPT-2).",
    "entropy": "Neurons with a large output norm (top decile of the layer by default) written mostly into the "
               "weakest singular directions of W_U: they change the final LayerNorm's scale, hence the entropy of "
               "the prediction, not any one logit (Gurnee et al., arXiv 2401.12181; Stolfo et al. 2024).",
    "deactivation": "Neurons whose output raises a later head's query toward the mean key at position 0 far more "
                    "than the layer's other neurons do (z above deact_z_min): firing sends that head to the first "
                    "token, an attention sink, switching it off (Gurnee et al., arXiv 2401.12181).",
}

_SCATTER = ("One point per neuron (seeds pooled) at the run's last step: skew against log10 kurtosis of its "
            "vocabulary effect v. Colour is its role (0 none, " + LEGEND + "; a neuron with several roles shows "
            "the first). Prediction neurons sit at high kurtosis and positive skew, suppression neurons at high "
            "kurtosis and negative skew; a Gaussian v sits at skew 0 and log10 3 = 0.48, the kurtosis threshold 10 "
            "at 1. Gurnee et al. (arXiv 2401.12181) read this plane layer by layer in GPT-2.")

_ENTROPY = ("One point per neuron (seeds pooled, every layer) at the run's last step: the norm of its output weights "
            "against the share of their squared norm in the null_dims weakest singular directions of the processed "
            "unembedding. Entropy neurons sit at the top right: a large output that no logit reads directly, which "
            "rescales the final LayerNorm and so the whole distribution. A random direction's share is about "
            "null_dims / d_model. Colour is the layer. Gurnee et al. (arXiv 2401.12181) found GPT-2's entropy "
            "neurons this way.")
