"""The engine's JSON files are strict JSON: NaN and infinities are written as null."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ainu_engine.strict_json import dumps, finite


def test_non_finite_floats_become_null_at_any_depth():
    obj = {
        "a": math.nan,
        "b": [1.0, math.inf, {"c": -math.inf}],
        "d": (np.float64("nan"), 2),
        "e": "NaN",
        "f": None,
    }
    assert finite(obj) == {
        "a": None,
        "b": [1.0, None, {"c": None}],
        "d": [None, 2],
        "e": "NaN",
        "f": None,
    }
    text = dumps(obj, indent=1)
    assert "NaN" not in text.replace('"NaN"', "") and "Infinity" not in text
    assert json.loads(text)["b"][1] is None


def test_finite_values_are_written_as_json_writes_them():
    obj = {"x": 0.1, "n": 3, "s": "é", "l": [True, None]}
    assert dumps(obj, ensure_ascii=False) == json.dumps(obj, ensure_ascii=False)
    with pytest.raises(TypeError):
        dumps({"arr": np.zeros(2)})  # as json.dumps: arrays are the caller's to convert
