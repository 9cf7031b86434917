"""Where DenseNet-121's time goes in int8 on ONNX Runtime's CPU provider, and what each change
to the quantized graph buys: ONNX Runtime's own profiler (per node), summed by operator type.

    python docs/results/int8-profile/int8_profile.py OUT_DIR     # .venv with the train extra

Variants of one model (DenseNet-121, 512 px, 2 channels, random weights with calibrated batch
norm: the time does not depend on what the weights learned), each quantized as the engine's
export does (QDQ, per-channel int8 weights, u8 activations, minmax on 16 simulated renders):

- ``fp32``: the baseline;
- ``int8``: the engine's int8 export as it is (``ainu_engine.training.precision.quantize``);
- ``int8-pre``: ONNX Runtime's recommended pre-processing first (``quant_pre_process``: shape
  inference and the graph optimisations, which fold each BatchNorm that follows a Conv into it);
- ``int8-pre-dw``: as ``int8-pre``, and every BatchNorm left (DenseNet's pre-activation ones,
  after a concatenation: no convolution before them to fold into) rewritten as the per-channel
  affine map it is, a depthwise 1x1 Conv, which ONNX Runtime runs in int8 (QLinearConv)
  instead of dequantize → BatchNorm in float → quantize.

Writes ``OUT_DIR/profile.json`` (per variant: images/s at batch 1, ms per image by operator
type, the node count by type) and prints a table.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))


def bn_as_depthwise_conv(model):
    """Every BatchNormalization of ``model`` (an onnx ModelProto, inference mode) as a depthwise
    1x1 Conv with the same per-channel scale and shift; returns the count rewritten."""
    import onnx
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    nodes, n = [], 0
    for node in model.graph.node:
        if node.op_type != "BatchNormalization" or any(i not in inits for i in node.input[1:]):
            nodes.append(node)
            continue
        scale, bias, mean, var = (numpy_helper.to_array(inits[i]).astype(np.float64)
                                  for i in node.input[1:5])  # fmt: skip
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        a = scale / np.sqrt(var + eps)
        b = bias - mean * a
        c = len(a)
        w_name, b_name = node.name + "_dw_w", node.name + "_dw_b"
        model.graph.initializer.extend([
            numpy_helper.from_array(a.reshape(c, 1, 1, 1).astype(np.float32), w_name),
            numpy_helper.from_array(b.astype(np.float32), b_name),
        ])  # fmt: skip
        nodes.append(helper.make_node("Conv", [node.input[0], w_name, b_name], [node.output[0]],
                                      name=node.name + "_dw", group=c, kernel_shape=[1, 1]))  # fmt: skip
        n += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return n


def profile(path: Path, x: np.ndarray, runs: int = 6) -> dict:
    """images/s at batch 1 and ms per image by operator type (ONNX Runtime's profiler)."""
    import onnxruntime as ort

    from ainu_engine.backends import session_options
    from ainu_engine.onnx_session import ort_session

    so = session_options(ort, threads=2, spinning=False)
    sess = ort_session(path, options=so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    for _ in range(2):
        sess.run(None, {name: x})
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        t.append(time.perf_counter() - t0)
    so.enable_profiling = True
    so.profile_file_prefix = str(path.with_suffix(""))
    prof = ort_session(path, options=so, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        prof.run(None, {name: x})
    trace = json.loads(Path(prof.end_profiling()).read_text())
    by_op, count = defaultdict(float), defaultdict(int)
    for ev in trace:
        if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
            by_op[ev["args"]["op_name"]] += ev["dur"] / 1000.0 / runs
    for node in {ev["name"]: ev for ev in trace if ev.get("cat") == "Node"}.values():
        if node["name"].endswith("_kernel_time"):
            count[node["args"]["op_name"]] += 1
    return {
        "images_per_s": round(1.0 / float(np.median(t)), 3),
        "ms_per_image": round(1000.0 * float(np.median(t)), 1),
        "ms_by_op": {k: round(v, 2) for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "nodes_by_op": dict(sorted(count.items(), key=lambda kv: -kv[1])),
    }


def main(out: Path) -> None:
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ainu_engine.training.precision import quantize
    from benchmarks.infer import _model
    from benchmarks.quantize import _renders

    out.mkdir(parents=True, exist_ok=True)
    images = _renders(17)
    cal, x = images[:16], images[16:17]
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _, fp32 = _model(tmp, 512, "densenet121")
        paths = {"fp32": fp32, "int8": tmp / "int8.onnx"}
        paths["int8"].write_bytes(quantize(fp32.read_bytes(), "int8", cal,
                                                   method="minmax", activations="u8"))
        pre = tmp / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))
        paths["int8-pre"] = tmp / "int8-pre.onnx"
        paths["int8-pre"].write_bytes(quantize(pre.read_bytes(), "int8", cal,
                                                   method="minmax", activations="u8"))
        m = onnx.load(str(pre))
        n_bn = bn_as_depthwise_conv(m)
        dw = tmp / "pre-dw.onnx"
        onnx.save(m, str(dw))
        paths["int8-pre-dw"] = tmp / "int8-pre-dw.onnx"
        paths["int8-pre-dw"].write_bytes(quantize(dw.read_bytes(), "int8", cal,
                                                   method="minmax", activations="u8"))
        for name, path in paths.items():
            res[name] = profile(path, x)
            print(f"{name:<12} {res[name]['images_per_s']:6.2f} images/s "
                  f"({res[name]['ms_per_image']} ms)", flush=True)
            for op, ms in list(res[name]["ms_by_op"].items())[:8]:
                print(f"    {op:<24} {ms:8.1f} ms  x{res[name]['nodes_by_op'].get(op, 0)}")
        res["bn_rewritten_as_depthwise_conv"] = n_bn
    base = res["fp32"]["images_per_s"]
    res["speedup_vs_fp32"] = {k: round(v["images_per_s"] / base, 2)
                              for k, v in res.items() if isinstance(v, dict) and "images_per_s" in v}  # fmt: skip
    (out / "profile.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res["speedup_vs_fp32"]))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "int8-profile-out"))
