"""More int8 forms of the trained model than ``export`` writes, to see what decides the calls'
agreement: the calibration (``export`` calibrates by percentile; here minmax and entropy), and
DenseNet's pre-activation batch norms quantized as depthwise convolutions (what ``export`` does,
for speed) or left in float32 (ONNX Runtime's own handling). Writes ``SCRATCH/int8-u8-<variant>.onnx`` with the fp32 model's
metadata.

    python docs/results/int8-trained/variants.py SCRATCH
"""

import sys
from pathlib import Path

import onnx

from ainu_engine.model import read_model_info
from ainu_engine.training import precision
from ainu_engine.training.checkpoint import load_checkpoint

VARIANTS = {  # name: (calibration, batch norms as depthwise convolutions)
    "minmax": ("minmax", True),
    "entropy": ("entropy", True),
    "percentile-bn-float": ("percentile", False),
}


def main() -> None:
    tmp = Path(sys.argv[1])
    fp32 = (tmp / "fp32.onnx").read_bytes()
    info = read_model_info(tmp / "fp32.onnx")
    _, ckpt = load_checkpoint(tmp / "run" / "best.pt")
    cal_x, _, _ = precision.run_images(tmp / "run" / "best.pt", info, ckpt)
    meta = list(onnx.load_from_string(fp32).metadata_props)
    rewrite = precision.batchnorm_as_depthwise_conv
    for name, (method, as_conv) in VARIANTS.items():
        precision.batchnorm_as_depthwise_conv = rewrite if as_conv else (lambda model: 0)
        try:
            data = precision.quantize(fp32, "int8", cal_x, method=method,
                                      input_name=info.input_name, activations="u8")  # fmt: skip
        finally:
            precision.batchnorm_as_depthwise_conv = rewrite
        proto = onnx.load_from_string(data)
        del proto.metadata_props[:]
        proto.metadata_props.extend(meta)
        (tmp / f"int8-u8-{name}.onnx").write_bytes(proto.SerializeToString())
        print(name, len(cal_x), "calibration images")


if __name__ == "__main__":
    main()
