"""The stand-in inference actor of ``benchmarks/distributed.py``: it sleeps a GPU's batch time
before the real (small, fast) model's calls, so that the Ray scheduler's scaling can be measured
on a machine without GPUs. Shipped to the workers by value (``register_pickle_by_value``)."""

from __future__ import annotations

import time

from ainu_engine.screen._ray import InferActor

#: seconds per batch (see distributed.STAND_IN_BATCH_S)
BATCH_S = 0.05


class SleepingActor(InferActor):
    def __call__(self, batch):
        time.sleep(BATCH_S * batch.num_rows / 8)
        return super().__call__(batch)
