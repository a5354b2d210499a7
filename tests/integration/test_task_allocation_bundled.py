"""The task-allocation analyzer on the bundled series (the full bundled analysis, run once per session)."""

import pytest

from tests.helpers import drawn_pngs


@pytest.fixture(scope="module")
def allocation_summary(bundled_results):
    return bundled_results.summaries["task-allocation"]


def test_bundled_competition_rare_task_loses_in_narrow_models(allocation_summary, bundled_results):
    per_run = allocation_summary["per_run"]
    for run in ("narrow", "wide"):
        for step, row in per_run[run].items():
            for key in ("rare_task_accuracy", "rare_task_neuron_share", "rare_common_overlap"):
                assert len(row[key]["per_seed"]) == 3, (run, step, key)
    last = {run: per_run[run][max(per_run[run], key=int)] for run in ("narrow", "wide")}
    wide_acc = last["wide"]["rare_task_accuracy"]["per_seed"].values()
    narrow_acc = last["narrow"]["rare_task_accuracy"]["per_seed"].values()
    assert min(wide_acc) >= 0.9 and max(narrow_acc) <= 0.6
    narrow_ov = last["narrow"]["rare_common_overlap"]["per_seed"].values()
    wide_ov = last["wide"]["rare_common_overlap"]["per_seed"].values()
    assert min(narrow_ov) > max(wide_ov)
    for f in drawn_pngs(bundled_results, "task-allocation"):
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
