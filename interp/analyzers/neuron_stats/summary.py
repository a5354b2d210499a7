"""``neuron-stats`` over a series: median kurtosis, activation frequency and dead fraction per run and step."""

from __future__ import annotations

from interp.report import headline as H
from interp.report.figures import Lines, per_run_lines
from interp.report.series import summarize_scalars
from interp.results import Result


def summarize(results: list[Result], uses: dict[str, list[Result]]) -> dict:
    """Per run and step (mean and spread over seeds): median kurtosis, activation frequency, dead fraction; figure
    specs of each over steps, and the last step's values as headline rows."""
    out = summarize_scalars(results, ("median_kurtosis", "mean_act_freq", "dead_fraction"))
    out["figures"] = [Lines(key, title, caption=caption, y_label=y_label,
                            lines=per_run_lines(out["per_run"], key)).to_json()
                      for key, title, y_label, caption in FIGURES]
    out["headline"] = []
    for run, d in out["per_run"].items():
        step = max(d, key=int)
        for key, label, digits in (("median_kurtosis", "median kurtosis of pre-activations", 3),
                                   ("dead_fraction", "fraction of never-active neurons", 3)):
            cell = d[step][key]
            out["headline"].append(H.seeds(run, f"{label}, step {step}", cell["per_seed"], digits, cell["mean"]))
    return out


_HOW = "Thin lines are single seeds, the thick line their mean; colour is the run."


FIGURES = (
    ("median_kurtosis", "Median kurtosis of MLP pre-activations over training", "median kurtosis (Gaussian: 3)",
     "The median over a run's MLP neurons of each neuron's pre-activation kurtosis over every prompt token. "
     f"{_HOW} A Gaussian pre-activation gives 3; a neuron that is quiet on most tokens and large on a few gives "
     "more. For comparison, Gurnee et al. (arXiv 2401.12181) find the universal neurons of GPT-2 heavy-tailed, "
     "with a median kurtosis of about 5.6, well above the other neurons."),
    ("mean_act_freq", "How often MLP neurons are active, over training", "mean activation frequency",
     "The mean over neurons of the fraction of tokens on which a neuron's pre-activation exceeds the threshold "
     f"(active_threshold, 0 by default: where ReLU switches on). {_HOW} Gurnee et al. (arXiv 2401.12181) find "
     "universal GPT-2 neurons sparse, active on about 2.5% of tokens."),
    ("dead_fraction", "Fraction of neurons never active, over training", "fraction of never-active neurons",
     "The fraction of a run's MLP neurons whose pre-activation never exceeds the threshold on any prompt token. "
     f"{_HOW} A dead neuron carries nothing and cannot be given to any task, so in a narrow model every dead "
     "neuron is capacity the tasks must compete for, the bottleneck Huang et al. (arXiv 2605.29548) blame for "
     "small models losing rare tasks."),
)
