#!/usr/bin/env bash
# The prepared GPU check (issue 15, item 5): about 8 minutes on one GPU, synthetic data, one JSON.
#   scripts/gpu_check.sh                      # writes gpu_check.json (exit 3 and a note without a GPU)
#   scripts/gpu_check.sh --tiny --out x.json  # CPU plumbing check at tiny sizes
# What each check compares with: scripts/gpu_check.py's docstring; results go to docs/results.md.
# Its `throughput` check gives the engine's samples/s and FLOP/s as a fraction of the bf16 matmul peak.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec "$PY" scripts/gpu_check.py "$@"
