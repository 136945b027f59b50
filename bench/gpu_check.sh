#!/usr/bin/env bash
# One command on a lent GPU machine: install the carried wheels, then run bench/gpu_check.py.
# Fill bench/gpu_wheels first, on a machine with pip access (docs/gpu.md). Extra arguments
# go to gpu_check.py; the report is bench/results/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=bench/gpu_wheels
if ! compgen -G "$wheels/*.whl" >/dev/null; then
    echo "gpu_check: no wheels in $wheels: fetch them first (docs/gpu.md)" >&2
    exit 2
fi
site=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$site" "$wheels"/*.whl
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec python3 bench/gpu_check.py "$@"
