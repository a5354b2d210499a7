import json

import numpy as np
import pytest

from interp.errors import InterpError
from interp.results import (
    Result,
    is_complete,
    load_result,
    load_results,
    save_result,
    unit_paths,
)


def make_result() -> Result:
    rng = np.random.default_rng(0)
    r = Result(analyzer="demo", unit_id="run/seed0/step10", config={"k": 3, "names": ["a", "b"]},
               provenance={"checkpoints": [{"id": "run/seed0/step10", "sha256": "ab" * 32}]})
    r.add("x", rng.normal(size=(4, 5)).astype(np.float32), ("neuron", "dim"))
    r.add("y", np.array([1.5, np.nan, -np.inf]), ("k",))
    r.add("i", np.arange(6, dtype=np.int64).reshape(2, 3), ("a", "b"))
    r.scalars.update(score=0.25, per_layer=[0.1, 0.2])
    return r


def test_save_load_is_bit_identical_and_self_describing(tmp_path):
    r = make_result()
    path = save_result(r, tmp_path)
    back = load_result(path)
    assert back.equals(r)
    for k in r.arrays:
        assert back.arrays[k].tobytes() == r.arrays[k].tobytes()
    summary = json.loads(path.read_text())
    assert summary["schema_version"] == 1 and "torch" in summary["provenance"]["packages"]
    assert summary["arrays"]["x"]["dims"] == ["neuron", "dim"]
    assert is_complete(tmp_path, "demo", r.unit_id)
    assert [x.unit_id for x in load_results(tmp_path, "demo")] == [r.unit_id]


def test_partial_units_are_not_complete(tmp_path):
    r = make_result()
    save_result(r, tmp_path)
    h5, js = unit_paths(tmp_path, "demo", r.unit_id)
    h5.write_bytes(h5.read_bytes()[:-10])  # a torn HDF5 write
    assert not is_complete(tmp_path, "demo", r.unit_id)
    with pytest.raises(InterpError, match="sha256"):
        load_result(js)
    assert load_results(tmp_path, "demo") == []
    js.unlink()  # HDF5 present, JSON never written: incomplete
    assert not is_complete(tmp_path, "demo", r.unit_id)
    with pytest.raises(InterpError, match="incomplete"):
        load_result(h5)


def test_equals_notices_a_single_bit():
    a, b = make_result(), make_result()
    assert a.equals(b)
    b.arrays["x"] = b.arrays["x"].copy()
    b.arrays["x"].view(np.uint32)[0, 0] ^= 1
    assert not a.equals(b)
