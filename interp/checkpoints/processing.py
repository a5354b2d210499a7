"""How a checkpoint's weights are processed on load: the manifest's ``processing`` block, also accepted in a native
run's ``config.json``. Its own module so that discovery (which validates a run's config) and the manifest (which
holds it) both read one schema without importing each other."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """A manifest block: an unknown field is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ProcessingEntry(Strict):
    fold_ln: bool = False
    center_writing_weights: bool = False
    center_unembed: bool = False
    dtype: Literal["float32", "float16", "bfloat16", "float64"] = "float32"
