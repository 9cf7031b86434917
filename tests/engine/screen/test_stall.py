"""A Ray screen whose results stop coming says what it waits on (issue 38): the watch reports a
stall once per timeout, not while results arrive, and a failing report does not stop it."""

from __future__ import annotations

import time

from ainu_engine.screen._ray import StallWatch, _cluster_state


def test_a_stall_is_reported_and_beats_keep_it_quiet():
    seen = []
    with StallWatch(0.2, lambda: "3 nuclei written", seen.append) as w:
        for _ in range(8):  # results every 0.05 s: no stall
            time.sleep(0.05)
            w.beat()
        assert seen == []
        time.sleep(1.0)  # quiet for 5 timeouts: reported about 4-5 times, not at every check
    assert 2 <= len(seen) <= 6 and all(m.endswith("s: 3 nuclei written") for m in seen)
    assert seen[0].startswith("no result for ")


def test_a_report_that_fails_is_said_not_raised():
    seen = []

    def broken():
        raise RuntimeError("cluster gone")

    with StallWatch(0.05, broken, seen.append):
        time.sleep(0.2)
    assert seen and "state unknown: cluster gone" in seen[0]


def test_the_cluster_state_names_what_the_tasks_wait_for():
    class FakeRay:
        def __init__(self, free):
            self.free = free

        def available_resources(self):
            return {"CPU": self.free}

        def cluster_resources(self):
            return {"CPU": 2.0}

    busy = _cluster_state(FakeRay(0.0), lambda: 7)
    assert busy.startswith("7 nuclei written; 0 of 2 CPUs free") and "--workers" in busy
    assert "slow or stuck" in _cluster_state(FakeRay(1.0), lambda: 7)
