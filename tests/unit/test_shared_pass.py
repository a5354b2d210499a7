"""One forward pass per (checkpoint, prompts): neuron-stats rides universal-neurons' lockstep pass over a seed group
instead of running its own, and gives the numbers it gives alone; nothing per token is written to disk."""

from __future__ import annotations

import interp
from interp.activations import lockstep
from interp.analyzers import registry
from interp.results import load_results


def test_neuron_stats_rides_the_lockstep_pass(tiny_series_dir, tmp_path, monkeypatch):
    passes = []
    real = lockstep.stream

    def counting(models, prompts, rows, hooks, device):
        passes.append(sorted(hooks))
        yield from real(models, prompts, rows, hooks, device)

    monkeypatch.setattr(lockstep, "stream", counting)
    names = ["neuron-stats", "universal-neurons"]
    both = interp.analyze(tiny_series_dir, names, options=interp.RunOptions(out_dir=tmp_path / "both",
                                                                            progress=False, workers=1))
    assert both.ran == 8 + 4          # 2 seeds x 4 steps of neuron-stats, 4 seed groups of universal-neurons
    # one pass per seed group, through both seeds' models at once: no pass of neuron-stats' own
    assert passes == [[0, 1]] * 4
    assert not list((tmp_path / "both" / "cache").rglob("*.h5"))   # neither analyzer cached an activation
    passes.clear()
    alone = interp.analyze(tiny_series_dir, ["neuron-stats"], options=interp.RunOptions(out_dir=tmp_path / "alone",
                                                                                        progress=False, workers=1))
    assert alone.ran == 8 and len(passes) == 8   # its own pass, one per checkpoint
    cls = registry.get("neuron-stats").Result
    a = {r.unit_id: r for r in load_results(tmp_path / "both", "neuron-stats", result_class=cls)}
    b = {r.unit_id: r for r in load_results(tmp_path / "alone", "neuron-stats", result_class=cls)}
    assert a.keys() == b.keys() and all(a[k].differences(b[k]) == [] for k in a)
    # the report says where a fed unit's time went, rather than "0.0 s computing"
    assert all(r.provenance["shared_pass"] for r in a.values()) and not any(r.provenance["shared_pass"]
                                                                          for r in b.values())
    import json

    from interp.report.pages import index_card

    timing = json.loads((tmp_path / "both" / "run.json").read_text())["timings"]["neuron-stats"]
    assert timing["shared_pass_units"] == 8
    assert "inside another analyzer's forward passes" in index_card("neuron-stats", {"units": 8}, None, timing)
    alone_timing = json.loads((tmp_path / "alone" / "run.json").read_text())["timings"]["neuron-stats"]
    assert alone_timing["shared_pass_units"] == 0
    assert "computing" in index_card("neuron-stats", {"units": 8}, None, alone_timing)
