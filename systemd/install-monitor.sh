#!/usr/bin/env bash
# Installs the maskdet monitor (`maskdet monitor`: the site's dashboard of every door) as a systemd
# service on Debian / Raspberry Pi OS (bookworm or later); safe to run again (it updates the
# package and the unit, and keeps an existing config, token and passwords).
#   sudo systemd/install-monitor.sh     then edit /etc/maskdet-monitor/monitor.yaml
#   sudo systemctl start maskdet-monitor
#
# The locations can be moved (the tests install into a temporary folder this way):
#   MASKDET_MONITOR_PREFIX  the venv and README                       (default /opt/maskdet-monitor)
#   MASKDET_MONITOR_CONF    monitor.yaml, the token and passwords     (default /etc/maskdet-monitor)
#   MASKDET_MONITOR_STATE   the SQLite database's folder              (default /var/lib/maskdet-monitor)
#   MASKDET_UNIT_DIR        where maskdet-monitor.service goes        (default /etc/systemd/system)
#   MASKDET_PYTHON          the interpreter of the venv               (default python3)
#   MASKDET_PIP_ARGS        more pip install arguments, e.g. "--no-index --find-links DIR"
#   MASKDET_SKIP            steps not to run, any of: apt user pip systemctl
#                           (without user, files keep the owner of whoever runs this, and root
#                           is not required once apt, user and systemctl are all skipped)
# A moved location is written into the installed unit (and a moved state folder into a new
# config's database URL) in place of the default.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${MASKDET_MONITOR_PREFIX:-/opt/maskdet-monitor}
CONF=${MASKDET_MONITOR_CONF:-/etc/maskdet-monitor}
STATE=${MASKDET_MONITOR_STATE:-/var/lib/maskdet-monitor}
UNIT_DIR=${MASKDET_UNIT_DIR:-/etc/systemd/system}
PYTHON=${MASKDET_PYTHON:-python3}
SKIP=" ${MASKDET_SKIP:-} "
read -r -a PIP_ARGS <<<"${MASKDET_PIP_ARGS:-}"
SERVICE_USER=maskdet-monitor

# shellcheck source=systemd/install-common.sh
. "$SRC/systemd/install-common.sh"

check_skip_steps apt user pip systemctl
if [ "$(id -u)" -ne 0 ] && ! { skipped apt && skipped user && skipped systemctl; }; then
  echo "run as root: sudo $0" >&2
  exit 1
fi
# Owners for install(1): root and the service group, unless the user step is skipped.
OWN_CONF=() OWN_SECRET=() OWN_STATE=()
if ! skipped user; then
  OWN_CONF=(-o root -g "$SERVICE_USER") OWN_SECRET=(-o root -g root)
  OWN_STATE=(-o "$SERVICE_USER" -g "$SERVICE_USER")
fi

echo "== packages"
if skipped apt; then
  echo "   skipped (MASKDET_SKIP)"
else
  apt-get update -qq
  # libpq5: PostgreSQL's client library, for psycopg where it has no binary wheel (32-bit ARM).
  apt-get install -y -qq python3-venv python3-pip libpq5
fi

echo "== user $SERVICE_USER"
if skipped user; then
  echo "   skipped (MASKDET_SKIP)"
elif ! id "$SERVICE_USER" >/dev/null 2>&1; then
  useradd --system --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi

install_venv monitor
cp "$SRC/README.md" "$PREFIX/README.md"

echo "== configuration in $CONF"
install -d -m 0750 "${OWN_CONF[@]}" "$CONF"
if [ ! -f "$CONF/monitor.yaml" ]; then
  config=$(mktemp)
  sed -e "s|^database: sqlite:////var/lib/maskdet-monitor/|database: sqlite:///$STATE/|" \
    "$SRC/systemd/monitor.example.yaml" >"$config"
  install -m 0640 "${OWN_CONF[@]}" "$config" "$CONF/monitor.yaml"
  rm -f "$config"
  echo "   wrote $CONF/monitor.yaml: set the broker (and the database, the listen address) there"
else
  echo "   kept $CONF/monitor.yaml"
fi
for secret in mqtt-password db-password; do
  if [ ! -f "$CONF/$secret" ]; then
    install -m 0600 "${OWN_SECRET[@]}" /dev/null "$CONF/$secret"
  fi
done
# The dashboard shows people's events: it gets a token from the start (a login, also on
# loopback). Read it with: sudo cat $CONF/monitor-token
if [ ! -s "$CONF/monitor-token" ]; then
  token=$(mktemp)
  "$PYTHON" -c 'import secrets; print(secrets.token_hex(24))' >"$token"
  install -m 0600 "${OWN_SECRET[@]}" "$token" "$CONF/monitor-token"
  rm -f "$token"
  echo "   wrote a new dashboard token to $CONF/monitor-token (root only; systemd hands it over)"
else
  echo "   kept the dashboard token in $CONF/monitor-token"
fi

echo "== state folder $STATE"
install -d -m 0750 "${OWN_STATE[@]}" "$STATE"

echo "== systemd unit in $UNIT_DIR"
mkdir -p "$UNIT_DIR"
# The unit names the default locations; a moved one replaces its default.
unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed -e "s|/opt/maskdet-monitor|$(sed_text "$PREFIX")|g" \
  -e "s|/etc/maskdet-monitor|$(sed_text "$CONF")|g" \
  "$SRC/systemd/maskdet-monitor.service" >"$unit"
install -m 0644 "$unit" "$UNIT_DIR/maskdet-monitor.service"
enable_unit maskdet-monitor.service

# Checked with the secrets where systemd hands them over (the files are root's: checked as root).
if [ -x "$PREFIX/venv/bin/maskdet" ]; then
  CREDENTIALS_DIRECTORY="$CONF" "$PREFIX/venv/bin/maskdet" monitor --check \
    --config "$CONF/monitor.yaml" || true
else
  echo "   no maskdet in $PREFIX/venv yet (pip skipped): the config is not checked"
fi
echo "done: edit $CONF/monitor.yaml, then: sudo systemctl start maskdet-monitor;" \
  "journalctl -u maskdet-monitor -f"
