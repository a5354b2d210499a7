"""Analyzer names -> classes, imported lazily (an analyzer's heavy imports are paid only when it runs).

Built-ins are listed below as ``name: "module:Class"``. Third parties register through the ``interp.analyzers``
entry-point group with the same ``"module:Class"`` value; a name given twice is an error, and an unknown name lists
the valid ones.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from interp.errors import ConfigError, suggest

if TYPE_CHECKING:   # the registry itself imports nothing heavy: `interp list` answers without numpy or torch
    from interp.analyzers.base import Analyzer

BUILTIN: dict[str, tuple[str, str]] = {
    # name: (target, one-line description, kept here so `interp list` imports nothing heavy)
    "neuron-stats": ("interp.analyzers.neuron_stats.analyzer:NeuronStats",
                     "per-neuron pre-activation moments, activation frequency and weight geometry"),
    "task-allocation": ("interp.analyzers.task_allocation.analyzer:TaskAllocation",
                        "per-task neuron attribution, neuron shares, overlap between tasks, and ablation checks"),
    "universal-neurons": ("interp.analyzers.universal_neurons.analyzer:UniversalNeurons",
                          "cross-seed neuron correlations vs a random-rotation baseline; universal neurons per layer"),
    "universal-lineage": ("interp.analyzers.universal_lineage.analyzer:UniversalLineage",
                          "when each universal neuron locked in over training, and whether the seeds agree on when"),
    "grad-interference": ("interp.analyzers.grad_interference.analyzer:GradInterference",
                          "per-task gradient cosines, first-order interference and the task/non-task batch split"),
    "sae-manifold": ("interp.analyzers.sae_manifold.analyzer:SAEManifold",
                     "SAE fits to a modular-addition model's Fourier circles: subspace capture, tiling or dilution"),
    "fourier-competition": ("interp.analyzers.fourier_competition.analyzer:FourierCompetition",
                            "Fourier circles of modular-addition embeddings over training: which survive, and were "
                            "they fittest"),
    "incidental-polysemanticity": ("interp.analyzers.incidental_polysemanticity.analyzer:IncidentalPolysemanticity",
                                   "task features carried per MLP neuron (direct input weights) against the toy "
                                   "model's n^2/(4m)"),
    "stages": ("interp.analyzers.stages.analyzer:Stages",
               "per-task loss curves with their s-curve drops, and the local learning coefficient by SGLD"),
    "likelihood-chain": ("interp.analyzers.likelihood_chain.analyzer:LikelihoodChain",
                         "log p(correct) -> p -> p among choices -> Brier -> accuracy per task, and how each "
                         "correlates with log step and width"),
    "neuron-roles": ("interp.analyzers.neuron_roles.analyzer:NeuronRoles",
                     "prediction, suppression, partition, entropy and attention-deactivation neurons from weights"),
}

ENTRY_POINT_GROUP = "interp.analyzers"


@lru_cache(maxsize=1)
def _table() -> dict[str, tuple[str, str]]:
    table = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in table:
            raise ConfigError(f"analyzer name {ep.name!r} is registered twice (built-in or another plug-in, and "
                              f"entry point {ep.value!r}); names must be unique")
        table[ep.name] = (ep.value, f"plug-in from {ep.value}")
    return table


def names() -> list[str]:
    return list(_table())


def describe() -> dict[str, str]:
    return {n: d for n, (_, d) in _table().items()}


def register(name: str, target: str, description: str = "") -> None:
    """Register an analyzer at run time (``"module:Class"``); a duplicate name is an error."""
    table = _table()
    if name in table:
        raise ConfigError(f"analyzer name {name!r} is already registered to {table[name][0]!r}")
    table[name] = (target, description or f"registered from {target}")


def get(name: str) -> type[Analyzer]:
    table = _table()
    if name not in table:
        raise ConfigError(f"unknown analyzer {name!r}; valid: {sorted(table)}." + suggest(name, table))
    module, _, cls = table[name][0].partition(":")
    analyzer = getattr(importlib.import_module(module), cls)
    if getattr(analyzer, "name", None) != name:
        raise ConfigError(f"{table[name][0]} declares name {getattr(analyzer, 'name', None)!r}, registered as {name!r}")
    return analyzer
