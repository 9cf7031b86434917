"""Incremental occlusion (ainu_engine.explain._incremental) gives the whole model's outputs.

The reference is the same network in float64 on each occluded copy: the incremental outputs
must be as close to it as float32 features allow (1e-5 of the largest window effect), on
networks that exercise every rule of the plan — strided and dilated convolutions, max pooling
with padding on negative values (-inf padding), average pooling with padding, a channel
concatenation, residual adds with a strided shortcut, odd non-square sizes, a non-linear head
after the pool and a head without a global pool — and on the project's ResNet-18 and small CNN
through ``occlusion`` and Captum.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the train extra (torch) is not installed")
pytest.importorskip("onnx", reason="the train extra (onnx) is not installed")
pytest.importorskip("onnxruntime", reason="the cpu extra (onnxruntime) is not installed")

from ainu_engine.explain import IncrementalPlans, occlusion  # noqa: E402
from ainu_engine.explain._incremental import IncrementalPlan, IncrementalUnsupported  # noqa: E402
from ainu_engine.kernels._occlusion import fill_occluded, window_grid  # noqa: E402

nn = torch.nn


class _Odd(nn.Module):
    """Every operator rule of the plan in one network."""

    def __init__(self, pooled_head: bool = True):
        super().__init__()
        self.stem = nn.Conv2d(2, 8, 5, stride=2, padding=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)  # no ReLU before: -inf padding matters
        self.dil = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.side = nn.Conv2d(8, 8, 1)
        self.down = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.short = nn.Conv2d(16, 16, 1, stride=2)
        self.pooled_head = pooled_head
        self.head = (
            nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3)) if pooled_head else None
        )
        self.flat = nn.LazyLinear(3) if not pooled_head else None

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = torch.relu(self.dil(x))
        x = self.avg(x)
        x = torch.sigmoid(torch.cat([x, self.side(x)], dim=1))
        x = torch.relu(self.down(x) + self.short(x))
        if self.pooled_head:
            return self.head(x.mean(dim=(2, 3)))
        return self.flat(x.flatten(1))


class _SqueezeExcite(nn.Module):
    """A squeeze-excitation block: its global pool ends the incremental part (tail on whole
    maps)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(2, 8, 3, stride=2, padding=1)
        self.se = nn.Conv2d(8, 8, 1)
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x * torch.sigmoid(self.se(x.mean(dim=(2, 3), keepdim=True)))
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class _Dense(nn.Module):
    """A small DenseNet: every layer reads the concatenation of all earlier features, and deep
    layers' changed regions cover the whole map (the plan cuts there and runs whole maps)."""

    def __init__(self, layers: int = 12, growth: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(2, 8, 3, stride=2, padding=1)
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(8 + growth * i),
                nn.ReLU(),
                nn.Conv2d(8 + growth * i, growth, 3, padding=1),
            )
            for i in range(layers)
        )
        self.fc = nn.Linear(8 + growth * layers, 3)

    def forward(self, x):
        feats = [self.stem(x)]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return self.fc(torch.relu(torch.cat(feats, 1)).mean(dim=(2, 3)))


class _GlobalFirst(nn.Module):
    """Starts with a global operation: nothing to split."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.conv(x * x.mean(dim=(2, 3), keepdim=True))
        return self.fc(x.mean(dim=(2, 3)))


def _export(net, shape, path):
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, *shape))  # materialise lazy layers
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(
        net,
        (torch.zeros(2, *shape),),
        None,
        input_names=["image"],
        output_names=["logits"],
        opset_version=18,
        dynamo=True,
        dynamic_shapes=({0: batch},),
        optimize=True,
    )
    program.save(str(path))
    return path


def _reference(net, image, window, stride, baseline=0.0):
    """Outputs (n_windows, K) float64 of the occluded copies, one whole float64 pass each."""
    tops, lefts = window_grid(image.shape[1], image.shape[2], window, stride)
    x = np.empty((len(tops), *image.shape), np.float32)
    fill_occluded(image, np.full_like(image, baseline), tops, lefts, window[0], window[1], x)
    net64 = net.double().eval()
    with torch.inference_mode():
        out = net64(torch.from_numpy(x).double()).numpy()
        full = net64(torch.from_numpy(image[None]).double()).numpy()[0]
    net.float()
    return out, full


def _check(plan, net, image, window, stride, batch, cut=None):
    if cut is not None:  # force where whole maps take over (default: IncrementalPlan.cut decides)
        plan._cuts[(tuple(window), tuple(stride))] = cut
    cache = plan.cache(image)
    n = len(window_grid(image.shape[1], image.shape[2], window, stride)[0])
    got = np.concatenate(
        [
            plan.logits(cache, idx, np.zeros_like(image), window, stride)
            for idx in np.array_split(np.arange(n), max(1, n // batch))
        ]
    )
    ref, full = _reference(net, image, window, stride)
    effect = np.abs(ref - full).max()
    assert effect > 1e-4  # the windows change the output
    np.testing.assert_allclose(cache["__out__"], full, rtol=0, atol=1e-5 * np.abs(full).max())
    # the effect of each window; a float32 head adds the rounding of its outputs
    err = np.abs((got - cache["__out__"]) - (ref - full)).max()
    rounding = 0.0 if plan.linear is not None else 4 * np.finfo(np.float32).eps * np.abs(full).max()
    assert err <= 1e-5 * effect + rounding, (err, effect)


@pytest.mark.slow
@pytest.mark.parametrize("pooled_head", [True, False])
def test_every_operator_rule_on_odd_sizes(torch_threads, tmp_path, pooled_head):
    torch.manual_seed(1)
    shape = (2, 75, 61)
    net = _Odd(pooled_head)
    path = _export(net, shape, tmp_path / "odd.onnx")
    plan = IncrementalPlan.from_onnx(path, shape, threads=2)
    assert plan.description["window_units"] >= 6
    if pooled_head:
        assert (
            plan.pooled is not None and plan.linear is None
        )  # Linear-ReLU-Linear runs as the model's head
    else:
        assert plan.pooled is None  # no global pool: the last maps run whole
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    for window, stride in [((16, 16), (8, 8)), ((9, 13), (4, 5))]:
        _check(plan, net, image, window, stride, batch=11)
    # whole maps from any unit on (residual and concat inputs live across the cut): same outputs
    for cut in range(1, len(plan.units)):
        _check(plan, net, image, (9, 13), (4, 5), batch=11, cut=cut)


@pytest.mark.slow
def test_deep_layers_whose_changes_cover_the_map_run_on_whole_maps(torch_threads, tmp_path):
    torch.manual_seed(3)
    shape = (2, 32, 32)
    net = _Dense()
    with torch.no_grad():  # batch norm statistics that are not the identity
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    plan = IncrementalPlan.from_onnx(_export(net, shape, tmp_path / "dense.onnx"), shape, threads=2)
    window, stride = (8, 8), (4, 4)
    k = plan.cut(window, stride)
    assert 1 < k < len(plan.units)  # early layers on crops, the deep ones on whole maps
    inc, whole = plan._work(window, stride)
    changed = inc / whole  # the part of each unit's maps that the windows change, on average
    assert (
        changed[0] < 0.2 and changed[k] > 0.5
    )  # small crops before the cut, most of the map after
    assert len(plan.live_at[k]) > 1  # every earlier feature map crosses the cut
    inc_all = plan.work_fraction(window, stride)
    plan._cuts[(window, stride)] = len(plan.units)
    assert plan.work_fraction(window, stride) < inc_all  # the cut does more multiply-adds ...
    del plan._cuts[(window, stride)]
    image = np.random.default_rng(5).random(shape, dtype=np.float32)
    _check(plan, net, image, window, stride, batch=13)  # ... and gives the same outputs


@pytest.mark.slow
def test_resnet18_with_its_linear_head_in_float64(torch_threads, tmp_path):
    from ainu_engine.training.models import create_model

    torch.manual_seed(0)
    net = create_model("resnet18", in_chans=2, num_classes=3)
    shape = (2, 96, 96)
    path = _export(net, shape, tmp_path / "r18.onnx")
    plan = IncrementalPlan.from_onnx(path, shape, threads=2)
    assert plan.linear is not None and "float64 linear head" in plan.description["tail"]
    assert (
        plan.description["window_units"] == 21
    )  # stem conv, max pool, 16 block convs, 3 shortcuts
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    _check(plan, net, image, (32, 32), (16, 16), batch=64)


def test_a_global_pool_inside_the_network_ends_the_incremental_part(torch_threads, tmp_path):
    torch.manual_seed(2)
    shape = (2, 40, 40)
    net = _SqueezeExcite()
    plan = IncrementalPlan.from_onnx(_export(net, shape, tmp_path / "se.onnx"), shape, threads=2)
    assert plan.description["units"] == 1 and plan.pooled is None  # the stem; the rest runs whole
    assert (
        plan.work_fraction((8, 8), (4, 4)) > 0.5
    )  # the whole-map tail counts: auto would not take it
    _check(
        plan,
        net,
        np.random.default_rng(2).random(shape, dtype=np.float32),
        (8, 8),
        (4, 4),
        batch=16,
    )


def test_a_model_that_starts_with_a_global_operation_is_refused(torch_threads, tmp_path):
    shape = (2, 32, 32)
    path = _export(_GlobalFirst(), shape, tmp_path / "g.onnx")
    with pytest.raises(IncrementalUnsupported, match="cannot be split"):
        IncrementalPlan.from_onnx(path, shape)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The benchmark's checkpoint + .onnx (2 channels, 2 classes) of small_cnn at 80 px."""
    from benchmarks.infer import _model

    torch.set_num_threads(2)
    return _model(tmp_path_factory.mktemp("inc"), 80, "small_cnn")


@pytest.mark.parametrize("window, stride", [(64, 32), (32, 16), (32, 8)])
def test_occlusion_on_onnxruntime_equals_captum(torch_threads, exported, window, stride):
    from captum.attr import Occlusion

    from ainu_engine.backends import create_backend

    ckpt, onnx_path = exported
    net = create_backend(ckpt, "torch").load().model
    rng = np.random.default_rng(3)
    img = rng.random((2, 80, 80), dtype=np.float32)
    img[:, 20:40, 30:50] += 2.0
    ort = create_backend(onnx_path, "onnxruntime", threads=2).load()
    for target in (0, 1):
        ref = (
            Occlusion(net)
            .attribute(
                torch.from_numpy(img[None]),
                sliding_window_shapes=(2, window, window),
                strides=(2, stride, stride),
                target=target,
                baselines=0.0,
                perturbations_per_eval=16,
            )[0, 0]
            .numpy()
        )
        ours = occlusion(
            ort, img, window=window, stride=stride, target=target, batch_size=9, incremental=True
        )
        assert ours.params["incremental"] is True
        assert np.abs(ours.maps[0] - ref).max() <= 1e-5 * np.abs(ref).max()


def test_auto_mode_says_which_path_and_why(torch_threads, exported):
    from ainu_engine.backends import create_backend

    ckpt, onnx_path = exported
    img = np.random.default_rng(4).random((2, 80, 80), dtype=np.float32)
    ort = create_backend(onnx_path, "onnxruntime", threads=2).load()
    plans = IncrementalPlans()
    # 16/8 windows change 16 % of small_cnn's work at 80 px: auto takes the incremental plan
    inc = occlusion(
        ort,
        [img, img[:, ::-1].copy()],
        window=16,
        stride=8,
        target="all",
        output="probabilities",
        plans=plans,
    )
    whole = occlusion(
        ort,
        [img, img[:, ::-1].copy()],
        window=16,
        stride=8,
        target="all",
        output="probabilities",
        incremental=False,
    )
    assert inc[0].params["incremental"] is True and whole[0].params["incremental"] is False
    assert 0.1 < inc[0].params["work_fraction"] < 0.2
    assert (
        inc[0].params["incremental_units"] == inc[0].params["units"]
    )  # small windows: no unit on whole maps
    plan = plans.get(ort, img.shape)  # the split model is kept by its owner ...
    assert plan is not None and not isinstance(plan, str) and plan.units
    assert occlusion(ort, img, window=16, stride=8, plans=plans).params["incremental"] is True
    assert plans.get(ort, img.shape) is plan  # ... reused, not rebuilt
    for a, b in zip(inc, whole, strict=True):
        assert np.abs(a.maps - b.maps).max() <= 1e-5 * np.abs(b.maps).max() + 1e-7
        np.testing.assert_allclose(a.maps.sum(0), 0.0, atol=1e-6)  # probability deltas sum to zero
    # 64/32 windows change most of it: whole passes, and the reason
    big = occlusion(ort, img, window=64, stride=32)
    assert (
        big.params["incremental"] is False
        and "of the model's work" in big.params["incremental_why_not"]
    )
    tb = create_backend(ckpt, "torch").load()
    on_torch = occlusion(tb, img, window=32, stride=16)
    assert on_torch.params["incremental"] is False
    assert "ONNX Runtime CPU" in on_torch.params["incremental_why_not"]
    with pytest.raises(ValueError, match="cannot run incrementally"):
        occlusion(tb, img, window=32, stride=16, incremental=True)
    ort.close()
    plans.close()
    assert not plan.units and plan._pool is None  # ... and closed with it (sessions, thread pool)


def _tiny_onnx(head: bool = True):
    """Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm, or without the pool and head
    (a map)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.random((4, 2, 3, 3), dtype=np.float32), "w"),
        numpy_helper.from_array(rng.random(4, dtype=np.float32), "b"),
        numpy_helper.from_array(rng.random((3, 4), dtype=np.float32), "fc_w"),
        numpy_helper.from_array(rng.random(3, dtype=np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
    ]
    if head:
        nodes += [
            helper.make_node("GlobalAveragePool", ["r"], ["p"]),
            helper.make_node("Flatten", ["p"], ["f"]),
            helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], transB=1),
        ]
    out = "y" if head else "r"
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, 16, 16])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        initializer=inits if head else inits[:2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_the_graph_partition_is_pure(monkeypatch):
    """The partition is graph analysis: it runs with ONNX Runtime unimportable."""
    import sys

    from ainu_engine.explain._incremental import partition_graph

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    part = partition_graph(_tiny_onnx(), (2, 16, 16))
    assert (
        len(part.units) == 1 and part.units[0].axes is not None
    )  # Conv + Relu run as one unit on crops
    assert part.pooled == "r" and part.linear is not None and part.tail_from == ["p"]
    assert part.live_at == [["x"], ["r"]]
    assert part.description()["tail"].startswith("global average pool updated incrementally")
    with pytest.raises(IncrementalUnsupported, match="output is a map"):
        partition_graph(_tiny_onnx(head=False), (2, 16, 16))
    with pytest.raises(IncrementalUnsupported, match="images are"):
        partition_graph(_fixed(_tiny_onnx()), (2, 8, 16))


def _fixed(model):
    """The same model with its input fixed at 16 x 16."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].Clear()
    dims[2].dim_value = 16
    return model
