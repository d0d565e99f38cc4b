#!/usr/bin/env bash
# The accelerator check (issue 17): the paper's full-size configuration (FC-DenseNet103 at
# 256², ResNet-18 on 224² patches of 1024² inputs, K = 100) on the real Shenzhen set of
# config/real.yaml, then epochs/s, patches/s and the metrics with the device named.
#   bench/gpu.sh              # on a CUDA machine: about 10 minutes
#   bench/gpu.sh --dry-run    # list the jobs only (any machine)
# On a machine without CUDA it says so and exits 0 without running anything.
# Environment: PYTHON (default .venv/bin/python), CORES (default all), RESULTS (default
# bench/gpu-run: a folder of its own, so the CPU run's results are not overwritten),
# PRECISION (fp32 default, bf16 or fp16: the networks' autocast; run it once with each,
# RESULTS apart, to compare epochs/s and patches/s with and without mixed precision).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
RESULTS="${RESULTS:-bench/gpu-run}"
PRECISION="${PRECISION:-fp32}"
PRECISE=()
for rule in train_segmentation train_classifier predict_classifier probe_source; do
  PRECISE+=("$rule:precision=$PRECISION")
done
CONFIG=(--configfile "$PWD/config/config.yaml" "$PWD/config/real.yaml" "$PWD/config/gpu.yaml")
SNAKEMAKE=("$PYTHON" -m snakemake --snakefile "$PWD/Snakefile" --directory "$RESULTS" --cores "${CORES:-all}"
  --set-resources "${PRECISE[@]}")
prepare() {
  mkdir -p "$RESULTS"
  # the data folders of config/real.yaml are relative to the run folder: ../shared there
  # must be the ../shared beside the repository
  [[ -e "$RESULTS/../shared" ]] || ln -s "$PWD/../shared" "$RESULTS/../shared"
}
if [[ "${1:-}" == "--dry-run" ]]; then
  prepare
  "${SNAKEMAKE[@]}" -n "${CONFIG[@]}"
  exit 0
fi
device=$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")')
if [[ -z "$device" ]]; then
  echo "bench/gpu.sh: no CUDA device on this machine (torch $("$PYTHON" -c 'import torch; print(torch.__version__)')): nothing run"
  exit 0
fi
test -d ../shared/data/cxr-shenzhen512 || { echo "bench/gpu.sh: needs ../shared/data/cxr-shenzhen512 and ../shared/data/cxr-sample"; exit 2; }
prepare
echo "bench/gpu.sh: device $device, precision $PRECISION; results in $RESULTS"
start=$(date +%s)
"${SNAKEMAKE[@]}" "${CONFIG[@]}"
echo "wall time $(( $(date +%s) - start )) s"
"$PYTHON" bench/gpu_summary.py "$RESULTS" "$device"
