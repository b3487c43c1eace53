#!/usr/bin/env bash
# Register the synthpipe deployments (deployments/prefect.yaml) on the API in PREFECT_API_URL,
# with the train-generator concurrency limit set to the number of GPUs behind the gpu pool:
# SYNTHPIPE_GPU_COUNT, else the count nvidia-smi reports on this host, else 1.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT="${PREFECT:-.venv/bin/prefect}"
if [[ -z "${SYNTHPIPE_GPU_COUNT:-}" ]]; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    SYNTHPIPE_GPU_COUNT="$(nvidia-smi -L | grep -c '^GPU' || true)"
  fi
  [[ "${SYNTHPIPE_GPU_COUNT:-0}" -ge 1 ]] || SYNTHPIPE_GPU_COUNT=1
fi
"$PREFECT" --no-prompt deploy --all --prefect-file deployments/prefect.yaml
if [[ "$SYNTHPIPE_GPU_COUNT" != 1 ]]; then
  "$PREFECT" --no-prompt deploy --name train-generator --prefect-file deployments/prefect.yaml \
    --concurrency-limit "$SYNTHPIPE_GPU_COUNT"
fi
echo "train-generator: at most ${SYNTHPIPE_GPU_COUNT} concurrent training run(s)"
