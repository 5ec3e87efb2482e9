#!/usr/bin/env bash
# The GPU check: one prepared run for a session that is lent a GPU machine (H200, Python 3.12, torch and
# cuda-python, no TensorRT, no package index). About 5 minutes; every log lands in $OUT.
#
# Before calling it, pack TensorRT for RTX here (see /work/shared/device/pack-trt-rtx.sh, ~62 MB):
#     bash /work/shared/device/pack-trt-rtx.sh
# then, with the device tool:  run(command="bash scripts/gpu_check.sh", carry=[".devpack"], timeout_s=540)
# Optional: wheels for what the machine lacks (safetensors, torchvision, onnx...) in .devpack/wheels/, within
# the 64 MiB the working tree may weigh; they are installed with --no-index.
#
# Caution: TensorRT for RTX 1.7 targets sm_75, sm_80, sm_86, sm_89 and sm_120/121 (its ComputeCapability enum has
# no SM90, and NVIDIA's support matrix lists 7.5, 8.6, 8.9, 12.0). On an H200 (sm_90) expect its engines to be
# refused with a clear EngineError ("this GPU cannot run the plan: ... unsupported cc"); data-centre TensorRT
# (`tensorrt`, 10.x) is the backend for Hopper, and trtnet uses it when it is importable.
#
# Steps, each under its own time limit so that one stuck step cannot eat the rest:
#   env.txt         GPU, driver, CUDA runtime, Python packages, TensorRT for RTX import
#   gpu_tests.log   the gpu-marked tests (runtime: numpy/torch inputs, CUDA graphs, two streams, dynamic batch;
#                   ResNet engines against torchvision), then bench.py's own test in GPU mode
#   bench.log       a short benchmark: resnet50 at batches 1, 8, 32, 200 iterations (+ bench-results.json, PNG)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export TRTNET_CACHE_DIR=${TRTNET_CACHE_DIR:-/tmp/trtnet-cache}
PY=${PYTHON:-python3}
t0=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - t0 )) s)"; }

if [ -f .devpack/trt_rtx.tar.xz ]; then
  step "unpacking TensorRT for RTX"
  mkdir -p /tmp/site && xz -dc .devpack/trt_rtx.tar.xz | tar -xf - -C /tmp/site
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
if [ -d .devpack/wheels ]; then
  step "installing carried wheels"
  $PY -m pip install -q --no-index --find-links .devpack/wheels .devpack/wheels/*.whl 2>&1 | tail -3
fi

step "environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
  $PY - <<'PY'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("numpy", "torch", "torchvision", "safetensors", "onnx", "ml_dtypes", "matplotlib", "tensorrt_rtx_bindings",
             "tensorrt", "cuda.bindings"):
    try:
        m = importlib.import_module(name)
        print(f"{name:24s} {getattr(m, '__version__', 'present')}")
    except Exception as e:  # report any import failure, whatever its type
        print(f"{name:24s} MISSING ({type(e).__name__}: {e})")
from cuda.bindings import runtime as r
print("driver", r.cudaDriverGetVersion(), "runtime", r.cudaRuntimeGetVersion(), "devices", r.cudaGetDeviceCount())
import trtnet.backend, trtnet.cudart, trtnet.target
print("trtnet backend:", trtnet.backend.get_backend(), "| device:", trtnet.target.describe_device(),
      "| engines built for:", trtnet.target.target())
trt = trtnet.backend.get_trt()
if hasattr(trt, "ComputeCapability"):
    print("this GPU:", trtnet.runtime.cudart.compute_capability(), "| TensorRT for RTX targets:",
          [n for n in vars(trt.ComputeCapability) if n.startswith("SM")])
PY
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step "GPU tests"
# test_runtime's GPU tests include a cached plan the GPU refuses (the builder rebuilds it before handing it out).
timeout 240 $PY -m pytest -q -m gpu -rs --durations=10 tests/test_runtime.py tests/zoo/test_resnet.py \
  > "$OUT/gpu_tests.log" 2>&1
echo "gpu tests exit $?" | tee -a "$OUT/gpu_tests.log"
timeout 150 $PY -m pytest -q -rs tests/test_bench.py::test_bench_reports_resnet18 >> "$OUT/gpu_tests.log" 2>&1
echo "bench test exit $?" | tee -a "$OUT/gpu_tests.log"
tail -25 "$OUT/gpu_tests.log"

step "short benchmark"
timeout 200 $PY bench.py --models resnet50 --batch-sizes 1 8 32 --iters 200 --warmup 20 \
  --json "$OUT/bench-results.json" --plot "$OUT/speedup.png" > "$OUT/bench.log" 2>&1
echo "bench exit $?" | tee -a "$OUT/bench.log"
cat "$OUT/bench.log"
step "done"
