#!/usr/bin/env bash
# Installs maskdet as a systemd service on Raspberry Pi OS (Debian bookworm or later); safe to run
# again (it updates the package and the unit, and keeps an existing config and password).
#   sudo systemd/install.sh            then edit /etc/maskdet/config.yaml
#   sudo systemctl start maskdet
set -euo pipefail
[ "$(id -u)" -eq 0 ] || { echo "run as root: sudo $0" >&2; exit 1; }
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=/opt/maskdet
CONF=/etc/maskdet
SERVICE_USER=maskdet

echo "== packages"
apt-get update -qq
apt-get install -y -qq python3-venv python3-pip
# The libcamera bindings are not on PyPI: picamera2 comes from Raspberry Pi OS, and the venv
# sees it through --system-site-packages.
apt-get install -y -qq python3-picamera2 || echo "python3-picamera2 unavailable: picamera2 sources will not work"

echo "== user $SERVICE_USER"
if ! id "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/maskdet --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi
for group in video gpio plugdev; do
  if getent group "$group" >/dev/null; then usermod -aG "$group" "$SERVICE_USER"; fi
done

echo "== virtual environment in $PREFIX/venv"
mkdir -p "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv --system-site-packages "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --upgrade pip
"$PREFIX/venv/bin/pip" install --quiet --upgrade "$SRC[pi]"
mkdir -p "$PREFIX/models"
cp -a "$SRC/models/." "$PREFIX/models/"
cp "$SRC/README.md" "$PREFIX/README.md"

echo "== configuration in $CONF"
install -d -m 0750 -o root -g "$SERVICE_USER" "$CONF"
if [ ! -f "$CONF/config.yaml" ]; then
  install -m 0640 -o root -g "$SERVICE_USER" "$SRC/systemd/maskdet.example.yaml" "$CONF/config.yaml"
  echo "   wrote $CONF/config.yaml: set the camera, pins and broker there"
fi
if [ ! -f "$CONF/mqtt-password" ]; then
  install -m 0600 -o root -g root /dev/null "$CONF/mqtt-password"
  echo "   put the MQTT password (if any) in $CONF/mqtt-password (root-only; systemd hands it over)"
fi

echo "== third-party model files"
install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" /var/cache/maskdet
sudo -u "$SERVICE_USER" MASKDET_CACHE=/var/cache/maskdet "$PREFIX/venv/bin/maskdet" models fetch \
  || echo "   some model files could not be fetched; see 'maskdet models' and README.md"

echo "== systemd unit"
install -m 0644 "$SRC/systemd/maskdet.service" /etc/systemd/system/maskdet.service
systemctl daemon-reload
systemctl enable maskdet.service >/dev/null
"$PREFIX/venv/bin/maskdet" check-config "$CONF/config.yaml" || true
echo "done: edit $CONF/config.yaml, then: sudo systemctl start maskdet; journalctl -u maskdet -f"
