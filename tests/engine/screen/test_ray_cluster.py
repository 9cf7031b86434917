"""The Ray executor on a simulated cluster of three nodes (``ray.cluster_utils.Cluster``, one CPU
each): a node removed mid-screen (with the tasks or the inference actor it was running) — the
screen completes and every nucleus is written exactly once."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from ainu_engine.screen import screen

ray = pytest.importorskip("ray", reason="the distributed extra (ray[data]) is not installed")
pytest.importorskip("onnxruntime", reason="screening needs the cpu extra")


@pytest.mark.slow
def test_a_node_removed_mid_screen_loses_and_doubles_nothing(screen_model, tmp_path):
    from ray.cluster_utils import Cluster

    from ainu_engine.simulate import Observation, simulate_dataset

    model, _, _ = screen_model
    obs = Observation(locs_per_channel=2000)
    data = tmp_path / "data"
    simulate_dataset(data, classes=("hiPSC", "somatic"), n_per_class=20, channels=("polII", "h3"),
                     observation=obs, seed=13)  # fmt: skip
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)
    removed = []

    def progress(p):  # after the first written batch: the other nodes are busy
        if not removed:
            cluster.remove_node(nodes[0])
            removed.append(p["nuclei"])

    try:
        assert ray.cluster_resources()["CPU"] == 3
        s = screen([data], model, tmp_path / "out", executor="ray", report=False, batch_size=2,
                   on_progress=progress)  # fmt: skip
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert removed and removed[0] < 40  # removed while nuclei were still to come
    assert s.n_failed == 0 and s.n_nuclei == 40
    keys = []
    for p in (tmp_path / "out" / "parts").glob("part-*.parquet"):
        t = pq.read_table(p, columns=["file_key", "nucleus_id"]).to_pydict()
        keys += list(zip(t["file_key"], t["nucleus_id"], strict=True))
    assert len(keys) == len(set(keys)) == 40
