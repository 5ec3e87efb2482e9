#!/usr/bin/env bash
# The GPU check: one prepared run for a session that is lent a GPU machine (H100/H200, Python 3.12, torch and
# cuda-python, no TensorRT, no package index). Every log, the results JSON and the PNG land in $OUT.
#
# Before calling it, pack TensorRT for RTX here (see /work/shared/device/pack-trt-rtx.sh, ~62 MB):
#     bash /work/shared/device/pack-trt-rtx.sh
# then, with the device tool:  run(command="bash scripts/gpu_check.sh", carry=[".devpack"], timeout_s=600)
# Optional: wheels for what the machine lacks (safetensors, onnx...) in .devpack/wheels/, within the 64 MiB the
# working tree may weigh; they are installed with --no-index.
#
# TensorRT for RTX 1.7 lists sm_75, sm_80, sm_86, sm_89, sm_120/121 (no sm_90). On a GPU it does not list,
# bench.py says so before building, tries the backend's own targeting for the present GPU once on a tiny
# network, and on a refusal writes the backend's message (bench.log, bench-results.json "meta.target") and stops.
#
# Steps, each under its own time limit so that one stuck step cannot eat the rest (worst case, every step
# running to its limit: 30 + 30 + 60 + 400 = 520 s, under 9 minutes; the unpacking of ~62 MB of xz takes ~15 s
# and the installs of carried wheels are bounded by the first limit):
#   env.txt          GPU, driver, CUDA runtime, Python packages, the backend and what it can target
#   gpu_tests.log    the gpu-marked runtime tests and the benchmark's GPU-kind tests (probe on this GPU)
#   bench.log        the full table: bench.py --all, 9 models x batch 1..32, --deadline 340 s inside a 400 s
#                    limit (+ bench-results.json, speedup.png)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export TRTNET_CACHE_DIR=${TRTNET_CACHE_DIR:-/tmp/trtnet-cache}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
t0=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - t0 )) s)" | tee -a "$OUT/steps.txt"; }

step "set-up"
{
  if [ -f .devpack/trt_rtx.tar.xz ]; then
    mkdir -p /tmp/site && timeout 30 sh -c 'xz -dc .devpack/trt_rtx.tar.xz | tar -xf - -C /tmp/site'
    echo "unpacked TensorRT for RTX: exit $?"
  fi
  if [ -d .devpack/wheels ]; then
    timeout 30 $PY -m pip install -q --no-index --find-links .devpack/wheels .devpack/wheels/*.whl 2>&1 | tail -3
  fi
} > "$OUT/setup.log" 2>&1
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site:$PYTHONPATH
cat "$OUT/setup.log"

step "environment"
timeout 30 bash -c "
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv 2>&1
$PY - <<'PY'
import importlib, sys
print('python', sys.version.split()[0])
for name in ('numpy', 'torch', 'torchvision', 'timm', 'transformers', 'safetensors', 'onnx', 'ml_dtypes',
             'matplotlib', 'tensorrt_rtx_bindings', 'tensorrt', 'tensorrt_bindings', 'cuda.bindings'):
    try:
        m = importlib.import_module(name)
        print(f'{name:24s} {getattr(m, \"__version__\", \"present\")}')
    except Exception as e:  # report any import failure, whatever its type
        print(f'{name:24s} MISSING ({type(e).__name__}: {e})')
from cuda.bindings import runtime as r
print('driver', r.cudaDriverGetVersion(), 'runtime', r.cudaRuntimeGetVersion(), 'devices', r.cudaGetDeviceCount())
from trtnet.backend import get_backend
from trtnet.bench.targets import target_report
from trtnet.runtime.cudart import compute_capability
from trtnet.target import describe_device
cc = compute_capability()
print('device:', describe_device(), '| backend:', get_backend())
if cc:
    digits = cc.removeprefix('sm_')
    for line in target_report((int(digits[:-1]), int(digits[-1]))).lines():
        print(line)
PY
" > "$OUT/env.txt" 2>&1
echo "environment exit $?" >> "$OUT/env.txt"
cat "$OUT/env.txt"

step "GPU tests"
timeout 60 $PY -m pytest -q -rs -x -m gpu tests/test_runtime.py tests/test_sidecar.py > "$OUT/gpu_tests.log" 2>&1
echo "runtime gpu tests exit $?" | tee -a "$OUT/gpu_tests.log"
timeout 30 $PY -m pytest -q -rs tests/test_bench_gpu_path.py -k "probe or target or rtx" >> "$OUT/gpu_tests.log" 2>&1
echo "GPU-kind tests exit $?" | tee -a "$OUT/gpu_tests.log"
tail -15 "$OUT/gpu_tests.log"

step "full table"
timeout 400 $PY bench.py --all --deadline 340 --json "$OUT/bench-results.json" --plot "$OUT/speedup.png" \
  > "$OUT/bench.log" 2>&1
echo "bench exit $?" | tee -a "$OUT/bench.log"
cat "$OUT/bench.log"
step "done"
