"""ScreenOptions and the executors: screen's keywords map onto them, and what cannot go together
is refused before anything runs."""

from __future__ import annotations

import pytest

from ainu_engine.screen import LocalExecutor, RayExecutor, ScreenOptions, screen


def test_keywords_map_onto_the_options_and_the_executor():
    o = ScreenOptions.from_keywords(backend="torch", read_threads=4, queue_size=8, nuclei="roi")
    assert o.backend == "torch" and o.nuclei == "roi"
    assert o.executor == LocalExecutor(read_threads=4, queue_size=8)
    r = ScreenOptions.from_keywords(
        executor="ray", ray_address="auto", workers=3, gpus_per_worker=0.5, ray_plan="fused",
        read_threads=9,  # a local executor's keyword: not the cluster's business
    )
    assert r.executor == RayExecutor(address="auto", workers=3, gpus_per_worker=0.5, plan="fused")
    assert not r.executor.loads_model and o.executor.loads_model


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"executor": "dask"}, ValueError, "executor must be local or ray"),
        ({"executor": "ray", "explain": 2}, ValueError, "explain needs the local executor"),
        ({"shard": (3, 2)}, ValueError, "shard must be"),
        ({"colour": "red"}, TypeError, "unexpected keyword arguments: colour"),
    ],
)
def test_what_cannot_go_together_is_refused(kw, error, message):
    with pytest.raises(error, match=message):
        ScreenOptions.from_keywords(**kw)


def test_screen_takes_options_or_keywords_not_both(tmp_path):
    with pytest.raises(TypeError, match="either options or keywords"):
        screen([tmp_path], "m.onnx", tmp_path / "out", ScreenOptions(), backend="torch")
    with pytest.raises(ValueError, match="needs an explainer"):
        screen([tmp_path], "m.onnx", tmp_path / "out", ScreenOptions(explain=1))
