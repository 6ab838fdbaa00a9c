#!/usr/bin/env bash
# Issue 15's GPU check in one short run on the lent device (about 8 minutes on an H100): bf16 against fp32 with
# SDPA, Trainer pairs/s with MFU and peak memory, the largest batch that fits, and eager against torch.compile.
#
# The device image lacks datasets, wfdb and two of their dependencies: download their wheels here first, into the
# git-ignored .whl/ folder, then run this script there carrying it (the README's "GPU check" says the same):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl \
#       datasets==5.2.0 wfdb==4.3.1 dill==0.4.1 multiprocess==0.70.19   (datasets also needs pyarrow >= 24)
#   device run: command "bash benchmarks/gpu_check.sh", carry [".whl"], timeout_s 570
# Results land in $OUT/bench_pretrain_gpu.json (what comes back) and the log in $OUT/gpu_check.log.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
python3 -m pip install -q --no-deps .whl/*.whl
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 HF_HOME=$(mktemp -d) TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
RESULT=$OUT/bench_pretrain_gpu.json
bench() {
    echo "== bench_pretrain.py $*"
    timeout "$1" python3 benchmarks/bench_pretrain.py "${@:2}" --output "$RESULT" 2>&1 | grep -v -i warn | tail -12
}
bench 90 --precision-check --presets small base --batch-size 32      # bf16 vs fp32 with SDPA: losses, gradients
bench 150 --presets small base --steps 30                           # bf16 Trainer pairs/s, MFU, peak memory
bench 150 --max-batch --presets small base                          # largest bf16 batch that fits
bench 150 --compile --presets base --rounds 3 --steps 10             # eager against torch.compile, fp32 and bf16
