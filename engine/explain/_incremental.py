"""Exact incremental occlusion on ONNX Runtime: re-compute only what a window changes.

Occluding one 64 x 64 window of a 512 x 512 image changes a small part of every early feature
map: a convolution's output changes only where its receptive field meets the change. The plan
splits an exported model into *units* — one convolution or pooling with the point-wise
operators after it (ReLU, a residual Add, ...), or point-wise operators alone — each an ONNX
Runtime session with free spatial size and the window operator's padding removed. For every
occluded copy, a unit runs only on the region its output changes in: its input is cut from the
original image's cached activation over exactly the positions that region reads, with the
copy's changed values pasted in and the operator's padding (0, or -inf for max pooling) written
explicitly where the region reaches past the border. A global average pool at the end is
updated from the changed region alone, and a linear classifier after it is applied in float64,
so a window's effect on the output is never the small difference of two rounded outputs. Deep
units whose changed region covers most of the map anyway (a DenseNet's later blocks) run on
whole maps instead, one copy per single-threaded run, from the unit :meth:`IncrementalPlan.cut`
picks. Each
output element is computed by the same arithmetic as in the whole model, so the outputs equal
the whole model's up to float32 summation order (tests compare them with Captum at 1e-5 of the
map's maximum).

This is the exact mode of Krypton (Nakandala, Kumar & Papakonstantinou, SIGMOD 2019), built
from the ONNX graph instead of a hand-split network. Conv, MaxPool, AveragePool (padding counted)
and point-wise operators (Relu, Add, Mul, Concat over channels, ...) are understood; the first
node that is none of these (a squeeze-excitation block's pooling, the classifier) ends the
incremental part, and what follows runs on whole maps.

References
----------
Nakandala, Kumar & Papakonstantinou, "Incremental and approximate inference for faster
occlusion-based deep CNN explanations", Proc. SIGMOD 2019, 1589-1606, doi:10.1145/3299869.3319874.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..onnx_session import ort_session

__all__ = ["IncrementalPlan", "IncrementalUnsupported"]

# operators whose output element depends on the same spatial position of each input only
_POINTWISE = {
    "Relu",
    "LeakyRelu",
    "PRelu",
    "Elu",
    "Selu",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "Clip",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Sum",
    "Max",
    "Min",
    "BatchNormalization",
    "Identity",
    "Dropout",
    "Softplus",
    "Mish",
    "Gelu",
    "Erf",
    "Sqrt",
    "Neg",
    "Abs",
    "Exp",
    "Log",
}
_WINDOWED = {"Conv", "MaxPool", "AveragePool"}
_FLAT = {"Reshape", "Flatten", "Squeeze"}
#: Cost of a multiply-add on a crop relative to one on whole maps, for :meth:`IncrementalPlan.cut`
#: (cropping, pasting, small single-threaded runs: ResNet-18 at 512 px did 16 % of the work in
#: 23 % of the time of whole passes, benchmarks/results/explain-cpu.json)
CROP_OVERHEAD = 1.5


class IncrementalUnsupported(ValueError):
    """The model has no part the incremental plan can split (occlusion then runs whole passes)."""


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of a window operator: effective kernel, stride, leading pad, lengths."""

    k: int
    s: int
    p: int
    n_in: int
    n_out: int

    def back(self, lo, hi):
        """Input positions read by outputs lo..hi (inclusive), not clipped (padding outside)."""
        return lo * self.s - self.p, hi * self.s - self.p + self.k - 1

    def fwd(self, lo, hi):
        """Outputs whose input window meets input positions lo..hi (may be empty: lo > hi)."""
        return max(0, -(-(lo + self.p - self.k + 1) // self.s)), min(
            self.n_out - 1, (hi + self.p) // self.s
        )


@dataclass
class _Unit:
    """A window operator (or none) and the point-wise nodes after it, run as one session.

    ``inputs``: the live tensors it reads (``inputs[0]`` feeds the window operator when there
    is one); ``outputs``: the tensors it makes that later units or the tail read.
    """

    inputs: list[str]
    outputs: list[str]
    first_output: str  # names the window operator in the extracted sub-model
    axes: tuple[_Axis, _Axis] | None
    pad_value: float
    out_hw: tuple[int, int]
    cost: float = 1.0  # multiply-adds per output position (the window operator's weights)
    done: list[str] = field(default_factory=list)  # inputs no later unit reads
    session: object = None

    def region(self, regions: dict):
        """Changed output region (r0, r1, c0, c1 inclusive) from the inputs' changed regions
        (``None``: unchanged); ``None`` when nothing changes."""
        got = []
        for k, name in enumerate(self.inputs):
            r = regions.get(name)
            if r is None:
                continue
            if k == 0 and self.axes is not None:
                r = (*self.axes[0].fwd(r[0], r[1]), *self.axes[1].fwd(r[2], r[3]))
                if r[0] > r[1] or r[2] > r[3]:
                    continue
            got.append(r)
        if not got:
            return None
        return (
            min(g[0] for g in got),
            max(g[1] for g in got),
            min(g[2] for g in got),
            max(g[3] for g in got),
        )

    def reads(self, k: int, out):
        """Region of input ``k`` that output region ``out`` reads (unclipped for the window
        operator's input: the part outside the map is its padding)."""
        if k == 0 and self.axes is not None:
            return (*self.axes[0].back(out[0], out[1]), *self.axes[1].back(out[2], out[3]))
        return out


@dataclass
class Partition:
    """How a model splits for incremental occlusion (pure graph analysis: no ONNX Runtime).

    ``units`` run on crops of the changed region, in order; the tail (``tail_from`` onwards)
    runs on whole maps — or, when ``pooled`` is set, a global average pool of that tensor is
    updated from the changed region and ``linear`` (W, b), when found, applied in float64.
    """

    units: list[_Unit]
    in_name: str
    out_name: str
    image_shape: tuple[int, int, int]
    tail_inputs: list[str]
    tail_from: list[str]
    pooled: str | None
    keepdims: bool
    linear: tuple[np.ndarray, np.ndarray] | None
    tail_cost: float
    live_at: list

    def description(self) -> dict:
        tail = (
            (
                "global average pool updated incrementally, then "
                + ("a float64 linear head" if self.linear is not None else "the model's head")
            )
            if self.pooled
            else f"whole maps of {', '.join(self.tail_inputs)}"
        )
        return {
            "units": len(self.units),
            "window_units": sum(u.axes is not None for u in self.units),
            "tail": tail,
        }


@dataclass
class _Graph:
    """The facts of a model's graph the partition needs, with the image shape fixed."""

    in_name: str
    out_name: str
    shapes: dict
    values: dict
    consts: set
    order: list
    last_use: dict

    def acts(self, node) -> list[str]:
        return [i for i in node.input if i and i not in self.consts]


def partition_graph(model, image_shape, *, name: str = "the model") -> Partition:
    """Partition an ONNX ``model`` (a ModelProto) for images shaped ``image_shape`` (C, H, W).

    Raises
    ------
    IncrementalUnsupported
        The model has not one image input and one output, its output is a map, or its first
        node cannot be split.
    """
    c, h, w = (int(v) for v in image_shape)
    g = _graph(model, (c, h, w), name)
    groups, stop = _groups(g)
    if stop is None:
        raise IncrementalUnsupported(f"{name}: the model's output is a map, not class scores")
    units, live = _units(g, groups)
    if not units:
        raise IncrementalUnsupported(
            f"{name}: its first node ({g.order[0].op_type}) cannot be split"
        )
    tail_inputs = sorted(live)
    last_reader = {t: u_i for u_i, unit in enumerate(units) for t in unit.inputs}
    for t, u_i in last_reader.items():
        if t not in live:
            units[u_i].done.append(t)  # the copies' changed values of t are dropped after it
    pooled, keepdims, linear, tail_from = _pool_shortcut(g, stop, live, tail_inputs)
    return Partition(
        units,
        g.in_name,
        g.out_name,
        (c, h, w),
        tail_inputs,
        tail_from,
        pooled,
        keepdims,
        linear,
        _tail_cost(g, stop),
        _live_at(units, g.in_name, tail_inputs),
    )


def _first_output_only(model):
    """A copy of ``model`` whose graph has only its first output."""
    from onnx import ModelProto

    out = ModelProto()
    out.CopyFrom(model)
    del out.graph.output[1:]
    return out


def _graph(model, chw: tuple[int, int, int], name: str) -> _Graph:
    from onnx import ModelProto, numpy_helper, shape_inference

    if len(model.graph.output) > 1:
        # the logits are the first output; a second (the features of the out-of-distribution
        # score, ainu.output's "embedding") plays no part in occlusion
        model = _first_output_only(model)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise IncrementalUnsupported(f"{name}: needs one image input and one output")
    in_name, out_name = inputs[0].name, graph.output[0].name
    fixed = ModelProto()
    fixed.CopyFrom(model)
    dims = next(i for i in fixed.graph.input if i.name == in_name).type.tensor_type.shape.dim
    if len(dims) != 4:
        raise IncrementalUnsupported(f"{name}: the input is not (batch, C, H, W)")
    for d, v in zip(dims[1:], chw, strict=True):
        if d.HasField("dim_value") and d.dim_value != v:
            raise IncrementalUnsupported(
                f"{name}: input is {[x.dim_value for x in dims]}, images are {chw}"
            )
        d.Clear()
        d.dim_value = v
    inferred = shape_inference.infer_shapes(fixed).graph
    shapes = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in (*inferred.value_info, *inferred.input, *inferred.output)
    }
    values = {k: numpy_helper.to_array(v) for k, v in inits.items()}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            values[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    consts = set(values) | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    order = [n for n in graph.node if n.op_type != "Constant"]
    last_use = {}
    for k, n in enumerate(order):
        for i in n.input:
            if i and i not in consts:
                last_use[i] = k
    last_use[out_name] = len(order)
    return _Graph(in_name, out_name, shapes, values, consts, order, last_use)


def _groups(g: _Graph) -> tuple[list[tuple[list[int], str]], int | None]:
    """Node groups (a window operator and the point-wise chain after it, or point-wise nodes
    alone), and the index of the first node no group can take (None: the output is a map)."""
    groups, k = [], 0
    while k < len(g.order):
        n = g.order[k]
        acts = g.acts(n)
        kind = _kind(n, acts, g.shapes, g.values)
        if kind is None:
            return groups, k
        members, produced = [k], {n.output[0]}
        window_src = acts[0] if kind == "window" else None
        while k + 1 < len(g.order):
            nxt = g.order[k + 1]
            nxt_acts = g.acts(nxt)
            if (
                _kind(nxt, nxt_acts, g.shapes, g.values) != "pointwise"
                or not any(a in produced for a in nxt_acts)
                or window_src in nxt_acts
                or g.shapes[nxt.output[0]][2:] != g.shapes[n.output[0]][2:]
            ):
                break
            k += 1
            members.append(k)
            produced.add(nxt.output[0])
        groups.append((members, kind))
        k += 1
    return groups, None


def _units(g: _Graph, groups) -> tuple[list[_Unit], set]:
    """One unit per group whose outputs something later reads, and the tensors live after them."""
    units, live = [], {g.in_name}
    for members, kind in groups:
        nodes = [g.order[m] for m in members]
        produced = {nd.output[0] for nd in nodes}
        reads = []
        for nd in nodes:
            for i in g.acts(nd):
                if i not in produced and i not in reads:
                    reads.append(i)
        axes, pad = None, 0.0
        cost = float(sum(g.shapes[nd.output[0]][1] for nd in nodes))  # point-wise: ~1 per value
        if kind == "window":
            first = nodes[0]
            src = g.acts(first)[0]
            reads.remove(src)
            reads.insert(0, src)
            axes = _axes(first, g.shapes[src][2:], g.shapes[first.output[0]][2:])
            pad = -np.inf if first.op_type == "MaxPool" else 0.0
            weight = (
                g.values.get(first.input[1])
                if first.op_type == "Conv" and len(first.input) > 1
                else None
            )
            kernel = axes[0].k * axes[1].k
            cost += (
                float(np.prod(weight.shape))
                if weight is not None
                else float(g.shapes[src][1] * kernel)
            )
        outs = [t for t in (nd.output[0] for nd in nodes) if g.last_use.get(t, -1) > members[-1]]
        live = {t for t in live | set(outs) if g.last_use.get(t, -1) > members[-1]}
        if outs:  # else nothing reads what these nodes make
            units.append(
                _Unit(
                    reads,
                    outs,
                    nodes[0].output[0],
                    axes,
                    pad,
                    tuple(g.shapes[nodes[-1].output[0]][2:]),
                    cost,
                )
            )
    return units, live


def _pool_shortcut(g: _Graph, stop: int, live: set, tail_inputs: list[str]):
    """(pooled tensor, keepdims, linear head, tail inputs): a global average pool of the last
    map is updated from the changed region alone, and a linear classifier after it is applied
    in float64. (A squeeze-excitation pool also reads the last map, but so does a later Mul:
    no shortcut then.)"""
    stop_node = g.order[stop]
    if (
        len(live) == 1
        and _is_global_mean(stop_node, g.values)
        and stop_node.input[0] in live
        and g.last_use.get(stop_node.input[0]) == stop
    ):
        linear = _linear_head(g.order[stop + 1 :], stop_node.output[0], g.out_name, g.values)
        return (
            stop_node.input[0],
            bool(_attr(stop_node, "keepdims", 1)),
            linear,
            [stop_node.output[0]],
        )
    return None, True, None, tail_inputs


def _tail_cost(g: _Graph, stop: int) -> float:
    """The tail's multiply-adds per copy (whole maps): convolution weights x output positions,
    one per output value elsewhere."""
    cost = 0.0
    for n in g.order[stop:]:
        out = g.shapes.get(n.output[0], [])
        weight = (
            g.values.get(n.input[1])
            if n.op_type in ("Conv", "Gemm", "MatMul") and len(n.input) > 1
            else None
        )
        if weight is not None:
            cost += float(weight.size) * (float(np.prod(out[2:])) if len(out) > 2 else 1.0)
        else:
            cost += float(np.prod(out[1:])) if len(out) > 1 else 1.0
    return cost


def _live_at(units: list[_Unit], in_name: str, tail_inputs: list[str]) -> list[list[str]]:
    """live_at[k]: what units from k on (and the tail) read of what was made before unit k."""
    made, live_at = {in_name}, []
    for k in range(len(units) + 1):
        needed = {t for u in units[k:] for t in u.inputs} | set(tail_inputs)
        live_at.append(sorted(made & needed))
        if k < len(units):
            made |= set(units[k].outputs)
    return live_at


@dataclass
class IncrementalPlan:
    """The split of one ONNX model for incremental occlusion of (C, H, W) images.

    Build it with :meth:`from_onnx`; :meth:`cache` computes an image's activations,
    :meth:`logits` the outputs of a batch of its occluded copies.
    """

    units: list[_Unit]
    cache_session: object
    cache_names: list[str]
    input_name: str
    tail: object  # session from the live tensors (or the pooled features) to the output
    tail_inputs: list[str]
    out_name: str
    image_shape: tuple[int, int, int]
    pooled: str | None = None  # the tensor a global average pool reads, when the tail starts there
    pool_keepdims: bool = True
    linear: tuple[np.ndarray, np.ndarray] | None = None  # (W (K, F), b (K,)) float64 after the pool
    description: dict = field(default_factory=dict)
    threads: int = 1
    tail_cost: float = 0.0  # multiply-adds per copy after the incremental part (whole maps)
    live_at: list = field(
        default_factory=list
    )  # live_at[k]: tensors made before unit k, read from it on
    _model: object = field(default=None, repr=False)  # the ONNX model, for the tails of cut plans
    _session: object = field(
        default=None, repr=False
    )  # makes an ONNX Runtime session (threads=...)
    _layouts: dict = field(default_factory=dict, repr=False)
    _cuts: dict = field(default_factory=dict, repr=False)
    _cut_tails: dict = field(default_factory=dict, repr=False)
    _pool: object = field(default=None, repr=False)

    @classmethod
    def from_onnx(
        cls, model_path, image_shape, *, threads: int | None = None, spinning: bool = True
    ) -> IncrementalPlan:
        """Split ``model_path`` for images shaped ``image_shape`` (C, H, W); raises
        :class:`IncrementalUnsupported` when the model starts with nothing it can split."""
        import onnx
        import onnxruntime as ort

        from ..backends import physical_cores, session_options

        model = onnx.load(os.fspath(model_path))
        part = partition_graph(model, image_shape, name=str(model_path))
        n_threads = int(threads or physical_cores())

        def session(proto, intra: int, arena: bool = True):
            so = session_options(ort, threads=intra, spinning=spinning)
            # one memory arena per unit session would grow to each unit's largest batch and keep
            # it: a DenseNet-121 (124 units) went past 24 GB that way
            so.enable_cpu_mem_arena = arena
            if not arena and _shared_arena(ort):
                so.add_session_config_entry("session.use_env_allocators", "1")
            return ort_session(proto.SerializeToString(), options=so)

        try:
            cache_session, tail_session, cache_names = _build_sessions(
                model,
                part.units,
                part.tail_from,
                part.tail_inputs,
                part.in_name,
                part.out_name,
                session,
                n_threads,
            )
        except Exception as err:  # noqa: BLE001 - a split ONNX Runtime cannot load: whole passes
            raise IncrementalUnsupported(
                f"{model_path}: a part of the split model does not load "
                f"({type(err).__name__}: {str(err).splitlines()[0][:200]})"
            ) from err
        return cls(
            part.units,
            cache_session,
            cache_names,
            part.in_name,
            tail_session,
            part.tail_from,
            part.out_name,
            part.image_shape,
            part.pooled,
            part.keepdims,
            part.linear,
            part.description(),
            n_threads,
            part.tail_cost,
            live_at=part.live_at,
            _model=model,
            _session=session,
        )

    def layout(self, window: tuple[int, int], stride: tuple[int, int]) -> list[np.ndarray]:
        """Changed output region of every unit (n_windows, 4) for a ``window`` / ``stride``
        occlusion: r0, r1, c0, c1 inclusive, r0 = -1 where nothing changes."""
        from ainu_engine.kernels import window_grid

        key = (tuple(window), tuple(stride))
        if key not in self._layouts:
            _, h, w = self.image_shape
            tops, lefts = window_grid(h, w, key[0], key[1])
            out = [np.full((len(tops), 4), -1, np.int64) for _ in self.units]
            for b, (t, lf) in enumerate(zip(tops, lefts, strict=True)):
                regions = {
                    self.input_name: (
                        int(t),
                        min(int(t) + window[0], h) - 1,
                        int(lf),
                        min(int(lf) + window[1], w) - 1,
                    )
                }
                for u_i, unit in enumerate(self.units):
                    r = unit.region(regions)
                    for o in unit.outputs:
                        regions[o] = r
                    if r is not None:
                        out[u_i][b] = r
            self._layouts[key] = out
        return self._layouts[key]

    def _work(
        self, window: tuple[int, int], stride: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Multiply-adds of every unit over all windows: (incremental, whole maps)."""
        inc, whole = [], []
        for unit, regions in zip(self.units, self.layout(window, stride), strict=True):
            live = regions[:, 0] >= 0
            area = np.where(
                live, (regions[:, 1] - regions[:, 0] + 1) * (regions[:, 3] - regions[:, 2] + 1), 0
            )
            inc.append(unit.cost * float(area.sum()))
            whole.append(unit.cost * unit.out_hw[0] * unit.out_hw[1] * len(regions))
        return np.asarray(inc), np.asarray(whole)

    def cut(self, window: tuple[int, int], stride: tuple[int, int]) -> int:
        """First unit that runs on whole maps for a ``window`` / ``stride`` occlusion
        (``len(units)``:
        none). Deep layers whose changed region covers most of the map gain nothing from crops;
        from the cut on, the copies run on whole maps (same outputs). The cut minimises
        ``CROP_OVERHEAD`` x the units' multiply-adds before it + whole maps' after it."""
        key = (tuple(window), tuple(stride))
        if key not in self._cuts:
            inc, whole = self._work(*key)
            before = np.concatenate([[0.0], np.cumsum(inc)]) * CROP_OVERHEAD
            after = whole.sum() - np.concatenate([[0.0], np.cumsum(whole)])
            cost = before + after
            # the last of the cheapest (ties: more incremental work), never 0 (that is whole passes)
            k = int(len(cost) - 1 - np.argmin(cost[::-1]))
            self._cuts[key] = max(k, 1)
        return self._cuts[key]

    def work_fraction(self, window: tuple[int, int], stride: tuple[int, int]) -> float:
        """Multiply-adds of the plan over those of whole passes for every window of a
        ``window`` / ``stride`` occlusion (the units after the :meth:`cut` and the tail count
        whole for every copy)."""
        inc, whole = self._work(window, stride)
        k = self.cut(window, stride)
        n = len(self.layout(window, stride)[0])
        total = whole.sum() + self.tail_cost * n
        return (
            float((inc[:k].sum() + whole[k:].sum() + self.tail_cost * n) / total) if total else 1.0
        )

    def cache(self, image: np.ndarray) -> dict:
        """Activations of ``image`` (C, H, W) that the units and the tail read, by tensor name,
        and the model's output for it (``"__out__"``, float64 when the head is linear)."""
        x = np.ascontiguousarray(image, np.float32)
        got = self.cache_session.run([self.out_name, *self.cache_names], {self.input_name: x[None]})
        acts = {name: v[0] for name, v in zip(self.cache_names, got[1:], strict=True)}
        acts[self.input_name] = x
        if self.pooled is not None:
            acts["__pool__"] = acts[self.pooled].mean(axis=(1, 2), dtype=np.float64)
            acts["__out__"] = self._head(acts["__pool__"][None])[0]
        else:
            acts["__out__"] = got[0][0].astype(np.float64)
        return acts

    def logits(
        self,
        cache: dict,
        windows: np.ndarray,
        baseline: np.ndarray,
        window: tuple[int, int],
        stride: tuple[int, int],
    ) -> np.ndarray:
        """Outputs (B, K) float64 of occluded copies of the image whose activations ``cache``
        holds (from :meth:`cache`): copy b has window ``windows[b]`` of the ``window`` /
        ``stride`` grid (row-major, as :func:`ainu_engine.kernels._occlusion.window_grid`) set to
        ``baseline`` (C, H, W)."""
        from ainu_engine.kernels import window_grid

        layout = self.layout(window, stride)
        _, h, w = self.image_shape
        tops, lefts = window_grid(h, w, tuple(window), tuple(stride))
        # per copy: tensor -> (region, values over the region)
        state = []
        for win in windows:
            r = (
                int(tops[win]),
                min(int(tops[win]) + window[0], h) - 1,
                int(lefts[win]),
                min(int(lefts[win]) + window[1], w) - 1,
            )
            state.append({self.input_name: (r, baseline[:, r[0] : r[1] + 1, r[2] : r[3] + 1])})
        cut = self.cut(window, stride)
        for u_i, unit in enumerate(self.units[:cut]):
            self._run_unit(unit, layout[u_i][windows], cache, state)
        if cut < len(self.units):
            return self._tail_on_whole_maps(cut, cache, state)
        if self.pooled is not None:
            return self._head(self._pooled(cache, state))
        return self.tail.run([self.out_name], self._whole_maps(cache, state, self.tail_inputs))[
            0
        ].astype(np.float64)

    def _run_unit(self, unit: _Unit, out: np.ndarray, cache: dict, state: list) -> None:
        """One unit on the changed crops of every copy (``out``: each copy's changed output
        region); copies with the same crop shape run together, split over a thread per core."""
        groups: dict = {}
        for b in np.flatnonzero(out[:, 0] >= 0):
            groups.setdefault((out[b, 1] - out[b, 0], out[b, 3] - out[b, 2]), []).append(b)

        def run(members):
            regions = [tuple(int(v) for v in out[b]) for b in members]
            feeds = {}
            for k, name in enumerate(unit.inputs):
                boxes = [unit.reads(k, r) for r in regions]
                r0, r1, c0, c1 = boxes[0]
                x = np.empty(
                    (len(members), cache[name].shape[0], r1 - r0 + 1, c1 - c0 + 1), np.float32
                )
                for j, b in enumerate(members):
                    _crop(
                        x[j],
                        cache[name],
                        state[b].get(name),
                        boxes[j],
                        unit.pad_value if k == 0 else 0.0,
                    )
                feeds[name] = x
            ys = unit.session.run(unit.outputs, feeds)
            for j, b in enumerate(members):
                for name, y in zip(unit.outputs, ys, strict=True):
                    state[b][name] = (regions[j], y[j])

        parts = [
            part
            for members in groups.values()
            for part in np.array_split(members, min(self.threads, len(members)))
            if len(part)
        ]
        list(self._map(run, parts))
        for copy in state:  # memory: only the changed values later units read are kept
            for name in unit.done:
                copy.pop(name, None)

    def _tail_on_whole_maps(self, cut: int, cache: dict, state: list) -> np.ndarray:
        """The units from ``cut`` on and the tail on whole maps: one copy per single-threaded
        run, the runs spread over a thread per core."""
        tail, names = self._tail_at(cut), self.live_at[cut]

        def whole(s):
            return tail.run(None, self._whole_maps(cache, state[s : s + 1], names))[0]

        y = np.concatenate(list(self._map(whole, range(len(state)))))
        if self.pooled is None:
            return y.astype(np.float64)
        return self._head(y.mean(axis=(2, 3), dtype=np.float64))

    def _pooled(self, cache: dict, state: list) -> np.ndarray:
        """The global average pool of every copy, updated from its changed region (float64)."""
        full = cache[self.pooled]
        pooled = np.repeat(cache["__pool__"][None], len(state), axis=0)
        for b, copy in enumerate(state):
            if self.pooled in copy:
                (r0, r1, c0, c1), new = copy[self.pooled]
                old = full[:, r0 : r1 + 1, c0 : c1 + 1]
                pooled[b] += (new.astype(np.float64) - old).sum(axis=(1, 2)) / (
                    full.shape[1] * full.shape[2]
                )
        return pooled

    def close(self) -> None:
        """Shut down the plan's thread pool and drop its ONNX Runtime sessions."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._cut_tails.clear()
        self.units, self.tail, self.cache_session = [], None, None

    def __enter__(self) -> IncrementalPlan:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _map(self, fn, items):
        """``fn`` over ``items`` on a thread per core (ONNX Runtime releases the GIL in runs)."""
        if self.threads <= 1:
            return map(fn, items)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="ainu-incremental")
        return self._pool.map(fn, items)

    @staticmethod
    def _whole_maps(cache: dict, state: list, names) -> dict:
        """Batches of whole maps ``names`` of every copy: the image's, with the copy's changed
        values."""
        feeds = {}
        for name in names:
            x = np.repeat(cache[name][None], len(state), axis=0)
            for b, copy in enumerate(state):
                if name in copy:
                    (r0, r1, c0, c1), new = copy[name]
                    x[b][:, r0 : r1 + 1, c0 : c1 + 1] = new
            feeds[name] = x
        return feeds

    def _tail_at(self, cut: int):
        """Session from the tensors live before unit ``cut`` to the pooled map (or the output)."""
        if cut not in self._cut_tails:
            import onnx

            sub = onnx.utils.Extractor(self._model).extract_model(
                self.live_at[cut], [self.pooled or self.out_name]
            )
            _free_dims(sub, (0,))
            self._cut_tails[cut] = self._session(sub, 1)
        return self._cut_tails[cut]

    def _head(self, pooled: np.ndarray) -> np.ndarray:
        if self.linear is not None:
            weight, bias = self.linear
            return pooled @ weight.T + bias
        x = np.ascontiguousarray(pooled, np.float32)
        x = x[:, :, None, None] if self.pool_keepdims else x
        return self.tail.run([self.out_name], {self.tail_inputs[0]: x})[0].astype(np.float64)


_SHARED_ARENA: list = []


def _shared_arena(ort) -> bool:
    """One CPU memory arena for all unit sessions (registered once per process)."""
    if not _SHARED_ARENA:
        try:
            info = ort.OrtMemoryInfo(
                "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
            )
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
            _SHARED_ARENA.append(True)
        except Exception:  # noqa: BLE001 - an older ONNX Runtime: each session allocates by itself
            _SHARED_ARENA.append(False)
    return _SHARED_ARENA[0]


def _build_sessions(
    model, units, tail_from, tail_inputs, in_name, out_name, session, n_threads: int
):
    """Sessions of every unit (window operator padding removed, free spatial size), of the tail
    and of the whole model with every cached tensor as an extra output."""
    import onnx
    from onnx import helper

    extractor = onnx.utils.Extractor(model)
    for unit in units:
        sub = extractor.extract_model(unit.inputs, unit.outputs)
        for nd in sub.graph.node:
            if unit.axes is not None and list(nd.output) == [unit.first_output]:
                for a in nd.attribute:
                    if a.name == "pads":
                        del a.ints[:]
                        a.ints.extend([0, 0, 0, 0])
        _free_dims(sub, (0, 2, 3))
        # small crops: one thread per session, the copies spread over threads (docs/explain.md)
        unit.session = session(sub, 1, arena=False)
    tail = extractor.extract_model(tail_from, [out_name])
    _free_dims(tail, (0,))
    cache_names = sorted(
        {t for u in units for t in u.inputs + u.outputs if t != in_name} | set(tail_inputs)
    )
    cached = onnx.ModelProto()
    cached.CopyFrom(model)
    for t in cache_names:
        cached.graph.output.append(helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None))
    return session(cached, n_threads), session(tail, n_threads), cache_names


def _crop(x: np.ndarray, full: np.ndarray, changed, box, pad: float) -> None:
    """Write into ``x`` the map ``full`` (C, H, W) over rows box[0]..box[1] and columns
    box[2]..box[3] (inclusive), with the changed values pasted in and ``pad`` where the box
    leaves the map."""
    r0, r1, c0, c1 = box
    _, h, w = full.shape
    a0, a1, b0, b1 = max(r0, 0), min(r1, h - 1), max(c0, 0), min(c1, w - 1)
    if a0 != r0 or a1 != r1 or b0 != c0 or b1 != c1:
        x.fill(pad)
    x[:, a0 - r0 : a1 + 1 - r0, b0 - c0 : b1 + 1 - c0] = full[:, a0 : a1 + 1, b0 : b1 + 1]
    if changed is not None:
        (q0, q1, p0, p1), vals = changed
        # the changed region may reach past this box (positions a strided window skips)
        a0, a1, b0, b1 = max(q0, r0), min(q1, r1), max(p0, c0), min(p1, c1)
        if a0 <= a1 and b0 <= b1:
            x[:, a0 - r0 : a1 + 1 - r0, b0 - c0 : b1 + 1 - c0] = vals[
                :, a0 - q0 : a1 + 1 - q0, b0 - p0 : b1 + 1 - p0
            ]


def _kind(node, acts, shapes, values):
    """ "window", "pointwise", or None for a node the plan cannot map position by position."""
    out_shape = shapes.get(node.output[0], [])
    if not acts or len(out_shape) != 4 or any(len(shapes.get(i, [])) != 4 for i in acts):
        return None
    if node.op_type in _WINDOWED:
        if len(acts) != 1 or _axes(node, shapes[acts[0]][2:], out_shape[2:]) is None:
            return None
        if (
            node.op_type == "AveragePool"
            and any(_attr(node, "pads", [0]))
            and not _attr(node, "count_include_pad", 0)
        ):
            return None  # the divisor changes near the border: explicit padding would not equal it
        return "window"
    if node.op_type in _POINTWISE or (
        node.op_type == "Concat" and _attr(node, "axis", 0) in (1, -3)
    ):
        # every activation input at the output's size (a pooled (B, C, 1, 1) factor is not per
        # position)
        return "pointwise" if all(shapes[i][2:] == out_shape[2:] for i in acts) else None
    return None


def _attr(node, name, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _axes(node, in_hw, out_hw):
    auto = _attr(node, "auto_pad", b"NOTSET")
    if (auto.decode() if isinstance(auto, bytes) else auto) not in ("NOTSET", "VALID") or _attr(
        node, "ceil_mode", 0
    ):
        return None
    kernel = _attr(node, "kernel_shape", None)
    if kernel is None or len(kernel) != 2:
        return None
    strides = _attr(node, "strides", [1, 1])
    dil = _attr(node, "dilations", [1, 1])
    pads = _attr(node, "pads", [0, 0, 0, 0])
    return tuple(
        _Axis((kernel[i] - 1) * dil[i] + 1, strides[i], pads[i], in_hw[i], out_hw[i])
        for i in range(2)
    )


def _is_global_mean(node, values) -> bool:
    if node.op_type == "GlobalAveragePool":
        return True
    if node.op_type != "ReduceMean":
        return False
    axes = _attr(node, "axes", None)
    if axes is None and len(node.input) > 1:
        axes = values.get(node.input[1])
    return axes is not None and sorted(int(a) % 4 for a in np.ravel(axes)) == [2, 3]


def _linear_head(nodes, pooled: str, out_name: str, values):
    """(W, b) float64 when the nodes after the pool are reshapes and one Gemm with constant
    weights (alpha * x @ W^T + beta * b), else None."""
    current = pooled
    for k, nd in enumerate(nodes):
        if nd.op_type in _FLAT and nd.input[0] == current:
            current = nd.output[0]
            continue
        if (
            nd.op_type == "Gemm"
            and nd.input[0] == current
            and nd.output[0] == out_name
            and k == len(nodes) - 1
            and nd.input[1] in values
            and not _attr(nd, "transA", 0)
        ):
            weight = np.asarray(values[nd.input[1]], np.float64)
            weight = weight if _attr(nd, "transB", 0) else weight.T
            weight = weight * float(_attr(nd, "alpha", 1.0))
            bias = np.zeros(weight.shape[0])
            if len(nd.input) > 2 and nd.input[2]:
                if nd.input[2] not in values:
                    return None
                bias = np.broadcast_to(
                    np.asarray(values[nd.input[2]], np.float64) * float(_attr(nd, "beta", 1.0)),
                    (weight.shape[0],),
                ).copy()
            return weight, bias
        return None
    return None


def _free_dims(model, which: tuple[int, ...]) -> None:
    """Dimensions ``which`` of a sub-model's inputs and outputs become free (any size)."""
    for vi in (*model.graph.input, *model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        for i in which:
            if i < len(dims):
                dims[i].Clear()
                dims[i].dim_param = f"d{i}"
    del model.graph.value_info[:]
