#!/usr/bin/env bash
# Verify every GPU path of ainu-engine and run the GPU benchmarks, in as few device calls as
# possible (device time is scarce). Written for the project's device machines (NVIDIA H100/H200,
# image with PyTorch CUDA, CuPy, Numba-CUDA, the CPU build of ONNX Runtime, no TensorRT, no
# network), but it runs on any Linux box with an NVIDIA GPU and those packages.
#
#   make gpu-wheels                 # here, once: the pure-Python packages the device image lacks
#   device run, carry [".whl"]:     AINU_GIT_COMMIT=<sha> bash benchmarks/gpu_session.sh tests
#   device run, carry [".whl"]:     AINU_GIT_COMMIT=<sha> bash benchmarks/gpu_session.sh render explain
#   device run, carry [".whl"]:     AINU_GIT_COMMIT=<sha> bash benchmarks/gpu_session.sh infer
#   device run, carry [".whl"]:     AINU_GIT_COMMIT=<sha> bash benchmarks/gpu_session.sh nucleus
#
# Stages (any order, several per call; each stage stays well inside one 10-minute call):
#   env      nvidia-smi and the versions that matter (always runs first)
#   tests    the CUDA kernels on the real GPU (AINU_REAL_GPU=1: not the simulator), CuPy inputs,
#            render/occlusion GPU paths against the CPU kernels, torch CUDA backends
#   render   python -m benchmarks run render  --device cuda  (goal: >= 1e9 localizations/s)
#   explain  python -m benchmarks run explain --device cuda  (goal: >= 20x Captum)
#   infer    python -m benchmarks run infer   --device cuda  (goals: see benchmarks/infer.py)
#   nucleus  python -m benchmarks run nucleus --device cuda  (TFill-Coarse paper width, 384 px)
#
# Everything a stage writes lands in $OUT (the device tool brings it back): session.log,
# tests.log, junit.xml and the *-cuda.json results (also in benchmarks/results/ there).
# Commit a result only from such a real run; the JSON names the GPU.
set -uo pipefail

OUT=${OUT:-gpu-session-out}
mkdir -p "$OUT"
LOG="$OUT/session.log"
export PYTHONUNBUFFERED=1 AINU_REAL_GPU=1 NUMBA_ENABLE_CUDASIM=0
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

if compgen -G ".whl/*.whl" >/dev/null; then
    # wheels carried from `make gpu-wheels` (no registry is reachable on the device)
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/ainu-site .whl/*.whl >>"$LOG" 2>&1 || { log "wheel install failed"; exit 3; }
    export PYTHONPATH="$PYTHONPATH:/tmp/ainu-site"
fi

stage_env() {
    log "stage env"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee -a "$LOG"
    "$PY" - <<'EOF' 2>&1 | tee -a "$LOG"
import importlib, sys
print("python", sys.version.split()[0])
for name in ("numpy", "numba", "numba_cuda", "cupy", "torch", "onnx", "onnxruntime", "captum",
             "roifile", "sklearn", "tensorrt"):
    try:
        m = importlib.import_module(name)
        print(f"{name:12s} {getattr(m, '__version__', '?')}")
    except Exception as err:  # a missing package is information here, not a failure
        print(f"{name:12s} MISSING ({type(err).__name__}: {err})")
import torch
print("torch.cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
from numba import cuda
print("numba cuda available", cuda.is_available())
import onnxruntime as ort
print("onnxruntime providers", ort.get_available_providers())
EOF
}

stage_tests() {
    log "stage tests (AINU_REAL_GPU=1)"
    "$PY" -m pytest -q -p no:cacheprovider -rs --timeout 400 --junitxml "$OUT/junit.xml" \
        tests/kernels tests/engine/render tests/engine/explain tests/engine/screen/test_backends.py \
        2>&1 | tee "$OUT/tests.log" | tail -n 40 | tee -a "$LOG"
    log "tests exit ${PIPESTATUS[0]}"
}

stage_bench() {
    log "stage benchmark $1 --device cuda"
    "$PY" -m benchmarks run "$1" --device cuda 2>&1 | tee -a "$LOG"
    log "benchmark $1 exit ${PIPESTATUS[0]}"
    cp "benchmarks/results/$1-cuda.json" "$OUT/" 2>/dev/null || log "no $1-cuda.json written"
}

stage_env
for stage in "$@"; do
    case "$stage" in
        env) ;;
        tests) stage_tests ;;
        render|explain|infer|nucleus) stage_bench "$stage" ;;
        *) log "unknown stage '$stage' (env, tests, render, explain, infer, nucleus)"; exit 2 ;;
    esac
done
log "done"
