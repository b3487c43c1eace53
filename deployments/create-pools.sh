#!/usr/bin/env bash
# Create (or update) the work pools synthpipe deploys to, on the API in PREFECT_API_URL.
#   cpu: process workers on CPU hosts (the parent pipeline)
#   gpu: process workers on GPU hosts (generator training)
# For Kubernetes, create the gpu pool from the job template that requests nvidia.com/gpu instead:
#   GPU_POOL_TYPE=kubernetes deployments/create-pools.sh   (needs the prefect-kubernetes package)
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT="${PREFECT:-.venv/bin/prefect}"
"$PREFECT" --no-prompt work-pool create cpu --type process --overwrite
if [[ "${GPU_POOL_TYPE:-process}" == "kubernetes" ]]; then
  "$PREFECT" --no-prompt work-pool create gpu --type kubernetes --overwrite \
    --base-job-template deployments/k8s-gpu-job-template.json
else
  "$PREFECT" --no-prompt work-pool create gpu --type process --overwrite
fi
