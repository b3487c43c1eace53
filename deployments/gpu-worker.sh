#!/usr/bin/env bash
# Start process workers for the `gpu` pool on this GPU host: one worker per GPU, each limited to
# one run at a time and owning its GPU (SYNTHPIPE_WORKER_GPU, applied by the train-generator
# flow before CUDA starts). Stops them all on Ctrl-C / SIGTERM.
#   PREFECT_API_URL   the shared server, e.g. http://prefect.internal:4200/api
#   SYNTHPIPE_HOME    this host's synthpipe checkout (default: the one holding this script)
#   GPU_IDS           GPUs to serve, e.g. "0 1" (default: every GPU nvidia-smi lists)
set -euo pipefail
export SYNTHPIPE_HOME="${SYNTHPIPE_HOME:-$(cd "$(dirname "$0")/.." && pwd)}"
: "${PREFECT_API_URL:?set PREFECT_API_URL to the Prefect server API, e.g. http://127.0.0.1:4200/api}"
export PREFECT_API_URL
PREFECT="${PREFECT:-$SYNTHPIPE_HOME/.venv/bin/prefect}"
if [[ -z "${GPU_IDS:-}" ]]; then
  command -v nvidia-smi >/dev/null 2>&1 || { echo "no nvidia-smi on this host: is it a GPU host?" >&2; exit 2; }
  GPU_IDS="$(nvidia-smi --query-gpu=index --format=csv,noheader | tr '\n' ' ')"
fi
"$SYNTHPIPE_HOME/.venv/bin/python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
  || { echo "torch on this host cannot see a CUDA GPU; install a CUDA build of torch" >&2; exit 2; }
cd "$SYNTHPIPE_HOME"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM
for gpu in $GPU_IDS; do
  SYNTHPIPE_WORKER_GPU="$gpu" "$PREFECT" --no-prompt worker start --pool gpu --type process \
    --name "gpu-$(hostname)-$gpu" --limit 1 &
  pids+=("$!")
done
wait
