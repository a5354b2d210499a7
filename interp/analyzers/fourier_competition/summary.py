"""``fourier-competition`` over a series: circles per run and step, whether the survivors were the fittest at the
start (AUROC), and figure specs (data and captions; ``interp.report`` draws them)."""

from __future__ import annotations

import numpy as np

from interp.report import headline as H
from interp.report.figures import Line, Lines, per_run_lines
from interp.report.series import summarize_scalars
from interp.results import Result, by_run_step


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Surviving circles per run and step; AUROC of survival from the first step's signal and gradient."""

    out = summarize_scalars(results, ("n_circles", "n_circles_reference", "signal_concentration", "train_loss"))
    out["headline"], out["fittest"], figures = [], {}, []
    for run, steps in by_run_step(results).items():
        first, last = steps[min(steps)], steps[max(steps)]
        by_seed = {r.seed: r for r in first}
        pairs = [(by_seed[r.seed], r) for r in last if r.seed in by_seed]
        alive = np.concatenate([end.surviving for _, end in pairs])
        fit = {"auroc_initial_signal": auroc(np.concatenate([a.arrays["signal"] for a, _ in pairs]), alive),
               "auroc_initial_grad": auroc(np.concatenate([a.arrays["grad_signal"] for a, _ in pairs]), alive),
               "survivors": {str(end.seed): end.scalars["circles"] for _, end in pairs}}
        out["fittest"][run] = fit
        pooled = f"pooled over {len(pairs)} seeds; 0.5 is chance"
        out["headline"] += [
            H.seeds(run, f"circles at step {max(steps)}", {r.seed: r.scalars["n_circles"] for r in last}, 2),
            H.seeds(run, f"circles at step {max(steps)}, the reference code's count",
                    {r.seed: r.scalars.get("n_circles_reference") for r in last
                     if r.scalars.get("n_circles_reference") is not None}, 2),
            H.single(run, f"AUROC of survival from the step-{min(steps)} signal", fit["auroc_initial_signal"], 3,
                     pooled)]
        if np.isfinite(fit["auroc_initial_grad"]):   # a concepts file has no training loss to differentiate
            out["headline"].append(H.single(run, f"AUROC of survival from the step-{min(steps)} gradient",
                                            fit["auroc_initial_grad"], 3, pooled))
        figures.append(signal_figure(run, steps))
    figures.append(Lines("n_circles", "Surviving Fourier circles over training", y_label="circles",
                         lines=per_run_lines(out["per_run"], "n_circles"),
                         caption="The number of circles (frequency pairs k, p - k) whose embedding signal exceeds "
                                 "twice the mean over frequencies. Thin lines are single seeds, the thick line "
                                 "their mean; colour is the run. Ding et al. (arXiv 2405.17420) find that few "
                                 "circles survive, and more with a wider embedding."))
    out["figures"] = [f.to_json() for f in figures]
    return out


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half); NaN without both. All
    pairs are compared: the sets here are frequencies x seeds, small."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg) or not np.isfinite(scores).all():
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def signal_figure(run: str, steps: dict) -> Lines:
    """Per seed, the signal of every frequency over steps: survivors at the last step coloured, the rest grey."""
    from interp.report.figures import Lines

    last = steps[max(steps)]
    lines = []
    for end in last:
        traj = np.stack([next(r for r in steps[st] if r.seed == end.seed).arrays["signal"] for st in steps])
        for k in range(traj.shape[1]):
            live = bool(end.surviving[k])
            lines.append(Line(list(steps), traj[:, k].tolist(), f"k={k + 1}" if live else "did not survive",
                              f"seed {end.seed}", label=f"k={k + 1}", faint=not live))
    return Lines(f"signal_{run}", f"{run}: embedding signal of every Fourier frequency over training, one panel per "
                 f"seed", y_label="embedding signal s_k", lines=lines, group_title="frequency",
                 caption="s_k is the norm of the embedding's Fourier transform over the operand ranks at frequency k. "
                         "Frequencies that survive at the last step (s_k above twice the mean) are coloured, the "
                         "rest grey. Ding et al. (arXiv 2405.17420) find that the survivors are the 'fittest': the "
                         "frequencies with the strongest signal and gradient at the start; the AUROC headline measures "
                         "that here.")
