#!/usr/bin/env bash
# Installs maskdet as a systemd service on Raspberry Pi OS (Debian bookworm or later); safe to run
# again (it updates the package and the unit, and keeps an existing config and password).
#   sudo systemd/install.sh            then edit /etc/maskdet/config.yaml
#   sudo systemctl start maskdet
#
# The locations can be moved (the tests install into a temporary folder this way):
#   MASKDET_PREFIX     the venv, models and README       (default /opt/maskdet)
#   MASKDET_CONF       config.yaml and mqtt-password     (default /etc/maskdet)
#   MASKDET_UNIT_DIR   where maskdet.service goes        (default /etc/systemd/system)
#   MASKDET_CACHE_DIR  the third-party model files       (default /var/cache/maskdet)
#   MASKDET_PYTHON     the interpreter of the venv       (default python3)
#   MASKDET_PIP_ARGS   more pip install arguments, e.g. "--no-index --find-links DIR"
#   MASKDET_SKIP       steps not to run, any of: apt user pip models systemctl
#                      (e.g. "apt user systemctl" in a test; without user, files keep the owner
#                      of whoever runs this, and root is not required once apt, user and
#                      systemctl are all skipped)
# A moved location is written into the installed unit in place of the default.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${MASKDET_PREFIX:-/opt/maskdet}
CONF=${MASKDET_CONF:-/etc/maskdet}
UNIT_DIR=${MASKDET_UNIT_DIR:-/etc/systemd/system}
CACHE_DIR=${MASKDET_CACHE_DIR:-/var/cache/maskdet}
PYTHON=${MASKDET_PYTHON:-python3}
SKIP=" ${MASKDET_SKIP:-} "
read -r -a PIP_ARGS <<<"${MASKDET_PIP_ARGS:-}"
SERVICE_USER=maskdet

skipped() { [[ $SKIP == *" $1 "* ]]; }
for step in ${MASKDET_SKIP:-}; do
  case $step in
    apt | user | pip | models | systemctl) ;;
    *) echo "MASKDET_SKIP: unknown step '$step' (apt user pip models systemctl)" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ] && ! { skipped apt && skipped user && skipped systemctl; }; then
  echo "run as root: sudo $0" >&2
  exit 1
fi
# Owners for install(1): root and the service group, unless the user step is skipped.
OWN_CONF=() OWN_SECRET=() OWN_CACHE=()
if ! skipped user; then
  OWN_CONF=(-o root -g "$SERVICE_USER") OWN_SECRET=(-o root -g root)
  OWN_CACHE=(-o "$SERVICE_USER" -g "$SERVICE_USER")
fi

echo "== packages"
if skipped apt; then
  echo "   skipped (MASKDET_SKIP)"
else
  apt-get update -qq
  apt-get install -y -qq python3-venv python3-pip
  # The libcamera bindings are not on PyPI: picamera2 comes from Raspberry Pi OS, and the venv
  # sees it through --system-site-packages.
  apt-get install -y -qq python3-picamera2 || echo "python3-picamera2 unavailable: picamera2 sources will not work"
fi

echo "== user $SERVICE_USER"
if skipped user; then
  echo "   skipped (MASKDET_SKIP)"
else
  if ! id "$SERVICE_USER" >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/maskdet --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
  fi
  for group in video gpio plugdev; do
    if getent group "$group" >/dev/null; then usermod -aG "$group" "$SERVICE_USER"; fi
  done
fi

echo "== virtual environment in $PREFIX/venv"
mkdir -p "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || "$PYTHON" -m venv --system-site-packages "$PREFIX/venv"
if skipped pip; then
  echo "   pip install skipped (MASKDET_SKIP)"
else
  # Built from a clean copy of the source: an in-tree build would leave build/ in the checkout,
  # whose stale files a later build packs again.
  stage=$(mktemp -d)
  trap 'rm -rf "$stage"' EXIT
  tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./runs \
    --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$stage" -xf -
  "$PREFIX/venv/bin/pip" install --quiet --upgrade pip "${PIP_ARGS[@]}"
  "$PREFIX/venv/bin/pip" install --quiet --upgrade "${PIP_ARGS[@]}" "${stage}[pi]"
  rm -rf "$stage"
fi
mkdir -p "$PREFIX/models"
cp -a "$SRC/models/." "$PREFIX/models/"
cp "$SRC/README.md" "$PREFIX/README.md"

echo "== configuration in $CONF"
install -d -m 0750 "${OWN_CONF[@]}" "$CONF"
if [ ! -f "$CONF/config.yaml" ]; then
  install -m 0640 "${OWN_CONF[@]}" "$SRC/systemd/maskdet.example.yaml" "$CONF/config.yaml"
  echo "   wrote $CONF/config.yaml: set the camera, pins and broker there"
else
  echo "   kept $CONF/config.yaml"
fi
if [ ! -f "$CONF/mqtt-password" ]; then
  install -m 0600 "${OWN_SECRET[@]}" /dev/null "$CONF/mqtt-password"
  echo "   put the MQTT password (if any) in $CONF/mqtt-password (root-only; systemd hands it over)"
fi

echo "== third-party model files in $CACHE_DIR"
install -d -m 0750 "${OWN_CACHE[@]}" "$CACHE_DIR"
if skipped models; then
  echo "   skipped (MASKDET_SKIP)"
else
  as_service=()
  skipped user || as_service=(runuser -u "$SERVICE_USER" --)
  "${as_service[@]}" env MASKDET_CACHE="$CACHE_DIR" "$PREFIX/venv/bin/maskdet" models fetch \
    || echo "   some model files could not be fetched; see 'maskdet models' and README.md"
fi

echo "== systemd unit in $UNIT_DIR"
mkdir -p "$UNIT_DIR"
# The unit names the default locations; a moved one replaces its default.
sed_text() { printf '%s' "$1" | sed 's/[|&\\]/\\&/g'; }  # a path as sed replacement text
unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed -e "s|/opt/maskdet|$(sed_text "$PREFIX")|g" -e "s|/etc/maskdet|$(sed_text "$CONF")|g" \
  -e "s|^Environment=MASKDET_CACHE=/var/cache/maskdet\$|Environment=MASKDET_CACHE=$(sed_text "$CACHE_DIR")|" \
  "$SRC/systemd/maskdet.service" >"$unit"
install -m 0644 "$unit" "$UNIT_DIR/maskdet.service"
if skipped systemctl; then
  echo "   systemctl daemon-reload / enable skipped (MASKDET_SKIP)"
else
  systemctl daemon-reload
  systemctl enable maskdet.service >/dev/null
fi
# Checked as the service sees it (the unit's environment).
MASKDET_MODELS="$PREFIX/models" MASKDET_CACHE="$CACHE_DIR" \
  "$PREFIX/venv/bin/maskdet" check-config "$CONF/config.yaml" || true
echo "done: edit $CONF/config.yaml, then: sudo systemctl start maskdet; journalctl -u maskdet -f"
