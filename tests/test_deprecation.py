"""The moved modules' old import paths work for one release and say where the module went
(CHANGELOG.md)."""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

MOVED = [
    ("ainu_engine.training.simulate", "ainu_engine.simulate", "simulate_dataset"),
    ("ainu_engine.training.widefield_simulate", "ainu_engine.simulate", "simulate_widefield"),
    ("ainu_engine.training.actin_simulate", "ainu_engine.simulate", "simulate_tiles"),
    ("ainu_engine.widefield", "ainu_engine.scenmed", "segment_field"),
    ("ainu_engine.training.widefield", "ainu_engine.training.scenmed", "fair_split"),
    ("ainu_engine.training.nucleus", "ainu_engine.training.nucleus_prediction", "train_generator"),
]


@pytest.mark.parametrize(("old", "new", "name"), MOVED)
def test_an_old_path_still_imports_and_warns(old, new, name, monkeypatch):
    if old.startswith("ainu_engine.training"):
        pytest.importorskip("torch", reason="the training extra (torch) is not installed")
    monkeypatch.delitem(sys.modules, old, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    assert getattr(mod, name) is getattr(importlib.import_module(new), name)
    (w,) = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert str(w.message) == f"{old} moved to {new}; the old path goes in 0.3.0"
