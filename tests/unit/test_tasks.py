import numpy as np
import pytest

from interp.errors import ConfigError
from interp.toys.tasks import (
    LABEL_POS,
    MixtureSpec,
    MixtureStream,
    TaskSpec,
    build_tasks,
    eval_sets,
    injection_count,
)


def mixture(gap: int = 1, freq: float = 0.05) -> MixtureSpec:
    return MixtureSpec(d_vocab=80, n_background=16, tasks=(
        TaskSpec("cmp", "comparison", n_operands=10, frequency=0.2, seed=3),
        TaskSpec("add", "modular_addition", n_operands=11, frequency=0.1, seed=4),
        TaskSpec("fact", "lookup", n_operands=6, n_labels=4, frequency=freq, seed=5, injection_gap=gap)))


def test_task_tokens_are_disjoint_and_outside_background():
    tasks = build_tasks(mixture())
    seen = set()
    for t in tasks.values():
        toks = set(t.operand_tokens.tolist()) | set(t.label_tokens.tolist())
        assert not toks & seen and min(toks) >= 16 and max(toks) < 80
        seen |= toks


@pytest.mark.parametrize("name", ["cmp", "add"])
def test_train_test_disjoint_cover_everything_and_reproducible(name):
    t1, t2 = build_tasks(mixture())[name], build_tasks(mixture())[name]
    train, test = {tuple(r) for r in t1.split("train")}, {tuple(r) for r in t1.split("test")}
    assert not train & test
    assert train | test == {tuple(r) for r in t1.split("all")}
    np.testing.assert_array_equal(t1.split("test"), t2.split("test"))


def test_labels_follow_the_hidden_rule():
    tasks = build_tasks(mixture())
    cmp, add = tasks["cmp"], tasks["add"]
    rank = {tok: i for i, tok in enumerate(cmp.operand_tokens)}
    for a, b, lab in cmp.split("all"):
        assert lab == (cmp.label_tokens[0] if rank[a] > rank[b] else cmp.label_tokens[1])
    rank = {tok: i for i, tok in enumerate(add.operand_tokens)}
    for a, b, lab in add.split("all"):
        assert rank[lab] == (rank[a] + rank[b]) % 11


def test_lookup_is_a_fixed_table_evaluated_on_every_fact():
    t = build_tasks(mixture())["fact"]
    rows = t.split("all")
    assert len(rows) == 36 and len({(a, b) for a, b, _ in rows}) == 36
    np.testing.assert_array_equal(t.split("train"), t.split("test"))  # memorisation: nothing to hold out


def test_batches_are_a_pure_function_of_seed_and_step_and_carry_task_ids():
    s1, s2 = MixtureStream(mixture(), 200, seed=1), MixtureStream(mixture(), 200, seed=1)
    b1, b2 = s1.batch(7), s2.batch(7)
    np.testing.assert_array_equal(b1.tokens, b2.tokens)
    assert not np.array_equal(b1.tokens, MixtureStream(mixture(), 200, seed=2).batch(7).tokens)
    tasks = build_tasks(mixture())
    for i, name in enumerate(s1.task_names):
        rows = b1.tokens[b1.task_id == i]
        assert np.isin(rows[:, :2], tasks[name].operand_tokens).all()
        assert b1.loss_mask[b1.task_id == i].sum(axis=1).tolist() == [1] * len(rows)
        assert b1.loss_mask[b1.task_id == i][:, LABEL_POS].all()
    bg = b1.tokens[b1.task_id == -1]
    assert (bg < 16).all() and b1.loss_mask[b1.task_id == -1].all()


def test_task_prompts_come_from_the_train_split_only():
    stream = MixtureStream(mixture(), 500, seed=0)
    test = {tuple(r) for r in build_tasks(mixture())["cmp"].split("test")}
    for step in range(20):
        b = stream.batch(step)
        assert not {tuple(r) for r in b.tokens[b.task_id == 0]} & test


@pytest.mark.parametrize("gap", [1, 10, 50])
def test_matched_injection_gives_the_same_count_at_the_same_global_frequency(gap):
    freq, bs, steps = 0.013, 256, 500
    counts = [injection_count(freq, bs, s, gap) for s in range(steps)]
    # every gap-th batch carries the whole gap's worth, and nothing in between
    assert all(c == 0 for s, c in enumerate(counts) if (s + 1) % gap)
    assert sum(counts) == int(np.floor(freq * bs * steps))
    stream = MixtureStream(mixture(gap=gap, freq=freq), bs, seed=0)
    fact = stream.task_names.index("fact")
    seen = sum(int((stream.batch(s).task_id == fact).sum()) for s in range(100))
    assert seen == int(np.floor(freq * bs * 100))


def test_eval_sets_and_errors():
    sets = eval_sets(mixture(), "test")
    assert set(sets) == {"cmp", "add", "fact"}
    with pytest.raises(ConfigError, match="frequency"):
        TaskSpec("x", "lookup", frequency=1.5)
    with pytest.raises(ConfigError, match="kind"):
        TaskSpec("x", "sorting")
    with pytest.raises(ConfigError, match="d_vocab"):
        MixtureSpec(d_vocab=20, n_background=16, tasks=(TaskSpec("x", "lookup", n_operands=10),))
    assert MixtureSpec.from_dict(mixture().to_dict()) == mixture()
