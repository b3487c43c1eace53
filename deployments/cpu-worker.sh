#!/usr/bin/env bash
# Start a process worker for the `cpu` pool on this host (runs the parent `synthesize` flow).
#   PREFECT_API_URL   the shared server, e.g. http://prefect.internal:4200/api
#   SYNTHPIPE_HOME    this host's synthpipe checkout (default: the one holding this script)
#   WORKER_LIMIT      concurrent flow runs on this host (default 2)
set -euo pipefail
export SYNTHPIPE_HOME="${SYNTHPIPE_HOME:-$(cd "$(dirname "$0")/.." && pwd)}"
: "${PREFECT_API_URL:?set PREFECT_API_URL to the Prefect server API, e.g. http://127.0.0.1:4200/api}"
export PREFECT_API_URL
cd "$SYNTHPIPE_HOME"
exec "${PREFECT:-$SYNTHPIPE_HOME/.venv/bin/prefect}" --no-prompt worker start --pool cpu --type process \
  --name "cpu-$(hostname)" --limit "${WORKER_LIMIT:-2}"
