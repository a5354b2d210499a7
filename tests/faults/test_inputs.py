"""Bad task and concepts files: every fault is one clear error naming the file and the line (or the limit), before
anything is computed; through the CLI, one line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import json

import pytest

from interp.errors import ConfigError, PromptError
from interp.prompts import concepts as C
from interp.prompts import task_file as T


@pytest.fixture(scope="module")
def codec(tmp_path_factory):
    """A word-level tokenizer over a few words (no BOS, like GPT-NeoX's), through interp's own reader."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from interp.prompts.text import codec

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator(["cmp a b ? yes no Monday Friday see you on"],
                            trainers.WordLevelTrainer(special_tokens=["<|endoftext|>", "[UNK]"]))
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tok.save(str(path))
    return codec(path)


GOOD_TASK = {"task": "cmp", "prompt": "cmp a b ?", "answer": " yes", "choices": [" yes", " no"]}


def _write(tmp_path, rows, name="tasks.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("row, match", [
    ({"prompt": "cmp a b ?", "answer": " yes"}, r"tasks.jsonl:2: missing \['task'\]"),
    ({"task": "cmp", "prompt": "", "answer": " yes"}, "tasks.jsonl:2: prompt must be a non-empty string"),
    ({"task": "cmp", "prompt": "x", "answer": 3}, "tasks.jsonl:2: answer must be a non-empty string"),
    ({**GOOD_TASK, "choices": [" yes"]}, "tasks.jsonl:2: choices must be a list of at least two"),
    ({**GOOD_TASK, "answer": " maybe"}, "tasks.jsonl:2: the answer ' maybe' is not one of the choices"),
    ({**GOOD_TASK, "split": "dev"}, "tasks.jsonl:2: split must be one of"),
    ({**GOOD_TASK, "frequency": 0}, r"tasks.jsonl:2: frequency must be a number in \(0, 1\]"),
    ({**GOOD_TASK, "frequency": 0.5}, "tasks.jsonl:2: task 'cmp' has frequency 0.5, but 0.1 on line 1"),
    ({**GOOD_TASK, "task": "background"}, "tasks.jsonl:2: task name 'background'"),
    ('{"task": "cmp", ', "tasks.jsonl:2: not a JSON line"),
    ('[1, 2]', "tasks.jsonl:2: expected an object"),
])
def test_a_bad_task_line_is_refused_by_file_and_line(tmp_path, row, match):
    path = _write(tmp_path, [{**GOOD_TASK, "frequency": 0.1}, row])
    with pytest.raises(PromptError, match=match):
        T.read_task_file(path)


def test_tokenization_faults_name_the_line(tmp_path, codec):
    path = _write(tmp_path, [GOOD_TASK, {"task": "cmp", "prompt": "cmp a b ?", "answer": " "}])
    with pytest.raises(PromptError, match="tasks.jsonl:2: the answer ' ' encodes to no tokens"):
        T.task_prompts(T.read_task_file(path), codec, n_ctx=16, d_vocab=64)
    path = _write(tmp_path, [GOOD_TASK, {"task": "cmp", "prompt": " ".join(["a"] * 20), "answer": " yes"}],
                  "long.jsonl")
    with pytest.raises(PromptError, match="long.jsonl:2: prompt and answer are 21 tokens, more than the model's "
                                          "context of 16"):
        T.task_prompts(T.read_task_file(path), codec, n_ctx=16, d_vocab=64)
    with pytest.raises(PromptError, match="outside the model's vocabulary"):
        T.task_prompts(T.read_task_file(_write(tmp_path, [GOOD_TASK], "v.jsonl")), codec, n_ctx=16, d_vocab=3)


def test_a_huge_or_missing_task_file_is_refused_before_reading(tmp_path, monkeypatch):
    path = _write(tmp_path, [GOOD_TASK])
    monkeypatch.setattr(T, "MAX_FILE_BYTES", 10)
    with pytest.raises(PromptError, match=r"tasks.jsonl: \d+ bytes, more than the 10 a task file may hold"):
        T.read_task_file(path)
    with pytest.raises(ConfigError, match="task file .*nope.jsonl does not exist"):
        T.read_task_file(tmp_path / "nope.jsonl")
    monkeypatch.setattr(T, "MAX_FILE_BYTES", 1 << 20)
    monkeypatch.setattr(T, "MAX_ITEMS", 2)
    with pytest.raises(PromptError, match="tasks.jsonl:3: more than 2 items"):
        T.read_task_file(_write(tmp_path, [GOOD_TASK] * 3))


GOOD_CONCEPT = {"concept": "weekday", "prompt": "see you on Monday", "value": 0, "period": 7}


@pytest.mark.parametrize("row, match", [
    ({**GOOD_CONCEPT, "period": 0}, "concepts.jsonl:2: period must be an integer >= 3"),
    ({**GOOD_CONCEPT, "value": 7}, r"concepts.jsonl:2: value must be an integer in \[0, 7\)"),
    ({**GOOD_CONCEPT, "value": -1}, r"concepts.jsonl:2: value must be an integer in \[0, 7\)"),
    ({**GOOD_CONCEPT, "value": 1.5}, "concepts.jsonl:2: value must be an integer"),
    ({**GOOD_CONCEPT, "period": 12, "value": 1}, "concepts.jsonl:2: concept 'weekday' has period 12, but 7"),
    ({**GOOD_CONCEPT, "at": "Friday", "value": 4}, "concepts.jsonl:2: at must be a non-empty piece of the prompt"),
    ({"concept": "weekday", "prompt": "x", "value": 1}, r"concepts.jsonl:2: missing \['period'\]"),
])
def test_a_bad_concept_line_is_refused_by_file_and_line(tmp_path, row, match):
    path = _write(tmp_path, [GOOD_CONCEPT, row, {**GOOD_CONCEPT, "value": 2}], "concepts.jsonl")
    with pytest.raises(PromptError, match=match):
        C.read_concepts(path)


def test_a_concept_needs_three_values_and_fits_the_context(tmp_path, codec):
    with pytest.raises(PromptError, match="concept 'weekday' has 2 distinct values; a circle needs at least 3"):
        C.read_concepts(_write(tmp_path, [GOOD_CONCEPT, {**GOOD_CONCEPT, "value": 1}], "two.jsonl"))
    rows = [{**GOOD_CONCEPT, "value": v} for v in range(3)] + [{**GOOD_CONCEPT, "prompt": "see you " * 9 + "on"}]
    with pytest.raises(PromptError, match="long.jsonl:4: the prompt is 19 tokens, more than the model's context of "
                                          "16"):
        C.concept_prompts(C.read_concepts(_write(tmp_path, rows, "long.jsonl")), codec, n_ctx=16, d_vocab=64)


def test_the_cli_reports_a_bad_task_file_in_one_line(tmp_path, series):
    from tests.helpers import cli, no_traceback

    path = _write(tmp_path, [GOOD_TASK, {"task": "cmp", "prompt": "x"}])
    r = cli(["analyze", "--checkpoint-dir", series, "--tasks", path, "-a", "task-allocation", "--out",
             tmp_path / "out", "--quiet"])
    assert r.exit_code == 2, r.output
    no_traceback(r)
    assert "tasks.jsonl:2: missing ['answer']" in r.stderr and len(r.stderr.strip().splitlines()) == 1
