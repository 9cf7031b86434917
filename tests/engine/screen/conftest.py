"""A small exported model and simulated nuclei in several formats, shared by the screen tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def screen_model(tmp_path_factory):
    """(model.onnx, best.pt, data folder): small CNN on simulated hiPSC vs somatic, 48 px,
    2 channels."""
    torch = pytest.importorskip(
        "torch", reason="the train extra (torch) is needed to make a test model"
    )
    pytest.importorskip("onnx", reason="the train extra (onnx) is needed to export a test model")
    from ainu_engine.render import RenderSpec
    from ainu_engine.simulate import Observation, simulate_dataset
    from ainu_engine.training.data import RenderCache, read_manifest
    from ainu_engine.training.export import export_onnx
    from ainu_engine.training.train import TrainConfig, train

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("screen-model")
    obs = Observation(locs_per_channel=4000)
    manifest = simulate_dataset(
        root / "train",
        classes=("hiPSC", "somatic"),
        n_per_class=6,
        channels=("polII", "h3"),
        observation=obs,
        seed=5,
    )
    spec = RenderSpec(pixel_nm=150, sigma_nm=120, size=48, channels=(1, 2))
    train(
        read_manifest(manifest),
        root / "run",
        spec=spec,
        cache=RenderCache(root / "cache", device="cpu"),
        config=TrainConfig(arch="small_cnn", epochs=2, patience=2, batch_size=4, folds=0, seed=0),
    )
    export_onnx(root / "run" / "best.pt", root / "model.onnx")
    data = root / "data"
    simulate_dataset(
        data / "slideA",
        classes=("hiPSC", "somatic"),
        n_per_class=2,
        channels=("polII", "h3"),
        observation=obs,
        seed=6,
        format="insight3",
    )
    simulate_dataset(
        data / "slideB",
        classes=("hiPSC",),
        n_per_class=2,
        channels=("polII", "h3"),
        observation=obs,
        seed=7,
        format="thunderstorm",
    )
    torch.set_num_threads(before)
    return root / "model.onnx", root / "run" / "best.pt", data


@pytest.fixture(scope="session")
def screen_batch(screen_model, tmp_path_factory):
    """(model, data folder, the single-machine screen of it): the shared test data plus files of
    two nuclei each (cell_id) and one bad file — what the distributed screens must reproduce."""
    import shutil

    from ainu_engine.screen import screen
    from ainu_engine.simulate import Observation, simulate_dataset

    model, _, base = screen_model
    root = tmp_path_factory.mktemp("batch")
    shutil.copytree(base, root / "data")
    simulate_dataset(root / "data" / "multi", classes=("somatic",), n_per_class=4,
                     channels=("polII", "h3"), observation=Observation(locs_per_channel=3000),
                     nuclei_per_file=2, seed=8)  # fmt: skip
    (root / "data" / "broken.csv").write_text("x,y\n1,2\nnot,a number\n")
    single = screen([root / "data"], model, root / "single", report=False)
    return model, root / "data", single
