"""The shipped example inputs parse as the files they claim to be, and are what their script writes."""

from __future__ import annotations

import json
from pathlib import Path

from interp.prompts.concepts import read_concepts
from interp.prompts.task_file import read_task_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_files_are_valid_and_reproducible():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    concepts = read_concepts(EXAMPLES / "weekdays_months.jsonl")
    assert concepts.names == ("weekday", "month")
    assert {it.period for it in concepts.items if it.concept == "month"} == {12}
    tasks = read_task_file(EXAMPLES / "random_token_tasks.jsonl")
    assert tasks.names == ("compare", "modadd") and tasks.frequency == {"compare": 0.01, "modadd": 0.0001}
    for name, rows in (("weekdays_months.jsonl", make.concepts()), ("random_token_tasks.jsonl", make.tasks())):
        assert (EXAMPLES / name).read_text() == "".join(json.dumps(r) + "\n" for r in rows)
