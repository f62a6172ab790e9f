#!/usr/bin/env bash
# Installs maskdet as a systemd service on Raspberry Pi OS (Debian bookworm or later); safe to run
# again (it updates the package and the unit, and keeps an existing config and password).
#   sudo systemd/install.sh            then edit /etc/maskdet/config.yaml
#   sudo systemctl start maskdet
#
# With a Coral Edge TPU (see README.md, "Coral Edge TPU"):
#   sudo systemd/install.sh --coral          the USB Accelerator (--coral=usb)
#   sudo systemd/install.sh --coral=pcie     a PCIe / M.2 module (the gasket driver is yours)
# installs the libedgetpu built for the TFLite runtime in the venv (a tested pair from
# systemd/coral-pins.txt: a mismatched pair crashes at load, so none is ever installed), the udev
# rule (USB: 1a6e:089a and 18d1:9302, GROUP plugdev, MODE 0660; PCIe: SUBSYSTEM apex, GROUP apex),
# the service user in plugdev (or apex), and a drop-in telling the service which runtime to use.
#   --coral-max            libedgetpu1-max (full clock, runs hot) instead of -std; only with
#   --coral-accept-eula    ... the EULA accepted (debconf libedgetpu/accepted-eula; a value
#                          already preseeded as true counts as accepted too)
#   --coral-deb FILE       install this .deb instead of downloading (or MASKDET_LIBEDGETPU_DEB):
#                          it must be the pinned file (sha256) when its row has a sha256
#   --coral-deb-unverified ... and may be installed when no sha256 is pinned for it (its sha256
#                          is printed so that it can be pinned), still only when it is built for
#                          the venv's runtime; a sha256 that differs from a pinned one is never
#                          accepted, and nothing downloaded is installed without a pinned sha256
#   -h, --help             this text
# Exit status: 0 done; 1 a step failed, or the Edge TPU part refused (maskdet itself is then
# installed and runs on the CPU); 2 a usage error (nothing was changed).
#
# The locations can be moved (the tests install into a temporary folder this way):
#   MASKDET_PREFIX     the venv, models and README       (default /opt/maskdet)
#   MASKDET_CONF       config.yaml and mqtt-password     (default /etc/maskdet)
#   MASKDET_UNIT_DIR   where maskdet.service goes        (default /etc/systemd/system)
#   MASKDET_CACHE_DIR  the third-party model files       (default /var/cache/maskdet)
#   MASKDET_UDEV_DIR   where --coral puts its udev rule  (default /etc/udev/rules.d)
#   MASKDET_CORAL_PINS the table of libedgetpu builds    (default systemd/coral-pins.txt)
#   MASKDET_PYTHON     the interpreter of the venv       (default python3)
#   MASKDET_PIP_ARGS   more pip install arguments, e.g. "--no-index --find-links DIR"
#   MASKDET_SKIP       steps not to run, any of: apt user pip models systemctl udev
#                      (e.g. "apt user systemctl" in a test; without user, files keep the owner
#                      of whoever runs this, and root is not required once apt, user and
#                      systemctl (and udev, with --coral) are all skipped; with --coral, apt
#                      covers debconf and the .deb's install, udev covers udevadm)
# A moved location is written into the installed unit in place of the default.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${MASKDET_PREFIX:-/opt/maskdet}
CONF=${MASKDET_CONF:-/etc/maskdet}
UNIT_DIR=${MASKDET_UNIT_DIR:-/etc/systemd/system}
CACHE_DIR=${MASKDET_CACHE_DIR:-/var/cache/maskdet}
UDEV_DIR=${MASKDET_UDEV_DIR:-/etc/udev/rules.d}
PINS=${MASKDET_CORAL_PINS:-$SRC/systemd/coral-pins.txt}
PYTHON=${MASKDET_PYTHON:-python3}
SKIP=" ${MASKDET_SKIP:-} "
read -r -a PIP_ARGS <<<"${MASKDET_PIP_ARGS:-}"
SERVICE_USER=maskdet

# shellcheck source=systemd/install-common.sh
. "$SRC/systemd/install-common.sh"

usage() { sed -n '2,/^set -euo/{/^set -euo/d; s/^# \{0,1\}//; p;}' "$0"; }
usage_error() { echo "install.sh: $*" >&2; echo "(install.sh --help tells the options)" >&2; exit 2; }

CORAL="" CORAL_MAX=0 CORAL_EULA=0 CORAL_UNVERIFIED=0 CORAL_DEB=""
while [ $# -gt 0 ]; do
  case $1 in
    --coral | --coral=usb) CORAL=usb ;;
    --coral=pcie) CORAL=pcie ;;
    --coral=*) usage_error "unknown Coral kind '${1#--coral=}': --coral (USB) or --coral=pcie" ;;
    --coral-max) CORAL_MAX=1 ;;
    --coral-accept-eula) CORAL_EULA=1 ;;
    --coral-deb) [ $# -ge 2 ] || usage_error "--coral-deb needs a FILE"; CORAL_DEB=$2; shift ;;
    --coral-deb=*) CORAL_DEB=${1#--coral-deb=} ;;
    --coral-deb-unverified) CORAL_UNVERIFIED=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage_error "unknown option $1" ;;
  esac
  shift
done
check_skip_steps apt user pip models systemctl udev

max_warning() {
  cat <<'WARN'
   WARNING: libedgetpu1-max runs the USB Accelerator at its full clock: faster, but it draws
   more power and its metal case gets hot enough to burn (Coral's own warning). Give it moving
   air, keep it out of reach, and power it from a powered port or hub.
WARN
}
eula_preseeded() {
  command -v debconf-show >/dev/null &&
    debconf-show libedgetpu1-max 2>/dev/null | grep -q 'libedgetpu/accepted-eula: true'
}
if [ -z "$CORAL" ]; then
  if [ "$CORAL_MAX" = 1 ] || [ "$CORAL_EULA" = 1 ] || [ -n "$CORAL_DEB" ] || [ "$CORAL_UNVERIFIED" = 1 ]; then
    usage_error "--coral-max, --coral-accept-eula, --coral-deb and --coral-deb-unverified go with --coral"
  fi
else
  CORAL_DEB=${CORAL_DEB:-${MASKDET_LIBEDGETPU_DEB:-}}
  if [ -n "$CORAL_DEB" ]; then
    [ -f "$CORAL_DEB" ] || usage_error "--coral-deb: $CORAL_DEB is not a file"
    CORAL_DEB=$(cd "$(dirname "$CORAL_DEB")" && pwd)/$(basename "$CORAL_DEB")
  fi
  if [ "$CORAL_MAX" = 1 ]; then
    [ "$CORAL" = usb ] || usage_error "--coral-max is the USB Accelerator's clock setting; it is" \
      "not offered here for a PCIe / M.2 module: leave --coral-max out with --coral=pcie"
    max_warning
    if [ "$CORAL_EULA" != 1 ] && ! eula_preseeded; then
      usage_error "--coral-max needs Coral's EULA accepted: libedgetpu1-max asks for it when it is" \
        "installed (debconf libedgetpu/accepted-eula). Having read it and the warning above, run" \
        "again with --coral-accept-eula, or keep the std clock (leave --coral-max out)"
    fi
  fi
fi
if [ "$(id -u)" -ne 0 ] && ! { skipped apt && skipped user && skipped systemctl &&
  { [ -z "$CORAL" ] || skipped udev; }; }; then
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

install_venv pi --system-site-packages
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
unit=$(mktemp)
trap 'rm -f "$unit"' EXIT
sed -e "s|/opt/maskdet|$(sed_text "$PREFIX")|g" -e "s|/etc/maskdet|$(sed_text "$CONF")|g" \
  -e "s|^Environment=MASKDET_CACHE=/var/cache/maskdet\$|Environment=MASKDET_CACHE=$(sed_text "$CACHE_DIR")|" \
  "$SRC/systemd/maskdet.service" >"$unit"
install -m 0644 "$unit" "$UNIT_DIR/maskdet.service"
enable_unit maskdet.service
# ---- the Coral Edge TPU (--coral) -----------------------------------------------------------
# The libedgetpu to install is a row of $PINS (columns: runtime runtime_version package
# deb_version arch distro sha256 url) whose runtime is in the venv. Refusals stop here, before
# anything of the Edge TPU is changed; what is installed above stays (it runs on the CPU).
CORAL_TMP=""
coral_refuse() {
  [ -z "$CORAL_TMP" ] || rm -rf "$CORAL_TMP"
  echo "coral: $*" >&2
  echo "   the Edge TPU is not set up; maskdet is installed and runs on the CPU" >&2
  exit 1
}
pin_rows() { grep -v -E '^[[:space:]]*(#|$)' "$PINS" || true; }
venv_runtimes() {  # "name version" of each TFLite runtime in the venv, as maskdet prefers them
  "$PREFIX/venv/bin/python" - <<'PY'
import importlib.metadata as metadata
import importlib.util as util

for module, names in (("ai_edge_litert", ("ai-edge-litert", "ai-edge-litert-nightly")),
                      ("tflite_runtime", ("tflite-runtime", "tflite_runtime"))):
    if util.find_spec(module) is None:
        continue
    version = "unknown"
    for name in names:
        try:
            version = metadata.version(name)
            break
        except metadata.PackageNotFoundError:
            pass
    print(module, version)
PY
}
runtime_advice() {  # what to install into the venv instead, for this machine
  local py machine
  py=$("$PREFIX/venv/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  machine=$(uname -m)
  echo "install the runtime a pinned libedgetpu is built for into the venv, then run this again" \
    "(it points the service at that runtime): the tested pair is tflite_runtime 2.17.1 with" \
    "libedgetpu 16.0tf2.17.1 (Frigate's): $PREFIX/venv/bin/pip install" \
    "https://github.com/feranick/TFlite-builds/releases/download/v2.17.1/tflite_runtime-2.17.1-$py-$py-linux_$machine.whl" \
    "(feranick/TFlite-builds has wheels for cp311 aarch64 among others; a Python it has none" \
    "for needs the 64-bit Raspberry Pi OS bookworm, Python 3.11)"
}

coral_setup() {
  echo "== Coral Edge TPU ($CORAL)"
  [ -f "$PINS" ] || coral_refuse "the table of libedgetpu builds $PINS is missing"
  local arch distro package runtimes listed row deb sha version runtime group rules
  local r_runtime r_rver r_package r_arch r_sha r_url tf max_flags=""
  arch=$(dpkg --print-architecture)
  distro=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d '"')
  package=libedgetpu1-std
  if [ "$CORAL_MAX" = 1 ]; then
    package=libedgetpu1-max max_flags=" --coral-max --coral-accept-eula"
  fi
  runtimes=$(venv_runtimes) || coral_refuse "cannot ask $PREFIX/venv/bin/python which TFLite runtime it has"
  [ -n "$runtimes" ] || coral_refuse "the venv $PREFIX/venv has no TFLite runtime; $(runtime_advice)"
  listed=$(printf '%s\n' "$runtimes" | paste -sd, - | sed 's/,/, /g')
  echo "   TFLite runtime in the venv: $listed; this machine: $arch, $distro"

  if [ -n "$CORAL_DEB" ]; then
    deb=$CORAL_DEB
    r_package=$(dpkg-deb -f "$deb" Package) || coral_refuse "$deb is not a Debian package"
    version=$(dpkg-deb -f "$deb" Version)
    r_arch=$(dpkg-deb -f "$deb" Architecture)
    [ "$r_package" = "$package" ] || coral_refuse "$deb holds $r_package, not $package" \
      "(--coral-max picks libedgetpu1-max, its absence libedgetpu1-std)"
    [ "$r_arch" = "$arch" ] || coral_refuse "$deb is built for $r_arch, this machine is $arch"
    sha=$(sha256sum "$deb" | cut -d' ' -f1)
    row=$(pin_rows | awk -v p="$package" -v v="$version" -v a="$arch" -v d="$distro" \
      '$3 == p && $4 == v && $5 == a && $6 == d { print; exit }')
    if [ -n "$row" ]; then
      read -r r_runtime r_rver _ _ _ _ r_sha _ <<<"$row"
      grep -qx "$r_runtime $r_rver" <<<"$runtimes" || coral_refuse "$package $version is built" \
        "for $r_runtime $r_rver; the venv has $listed, and a mismatched pair crashes at load;" \
        "$(runtime_advice)"
      if [ "$r_sha" != "-" ]; then
        [ "$sha" = "$r_sha" ] || coral_refuse "$deb has sha256 $sha, the pin for $package $version" \
          "($arch, $distro) in $PINS is $r_sha: not the released file (or another distro's" \
          "build); not installed"
        echo "   $deb: sha256 as pinned"
      elif [ "$CORAL_UNVERIFIED" = 1 ]; then
        echo "   $deb: no sha256 pinned in $PINS; installed as asked (--coral-deb-unverified):" \
          "sha256 $sha (pin it in that table to verify it next time)"
      else
        coral_refuse "no sha256 is pinned for $package $version ($arch, $distro) in $PINS, so" \
          "$deb cannot be verified (its sha256 is $sha; GitHub shows each release asset's" \
          "sha256 on the release page): put the checked sha256 in the table, or run again" \
          "with --coral-deb-unverified"
      fi
    else
      [ "$CORAL_UNVERIFIED" = 1 ] || coral_refuse "$deb ($package $version) is not a pinned" \
        "build for $arch / $distro in $PINS; add --coral-deb-unverified to install it all the" \
        "same (only when it is built for the venv's runtime)"
      tf=$(sed -n 's/^[0-9.]*[tT][fF]\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p' <<<"$version")
      if [ -z "$tf" ] || ! grep -qx "tflite_runtime $tf" <<<"$runtimes"; then
        coral_refuse "$package $version is built for TensorFlow ${tf:-(unknown: not a" \
          "16.0tf<version> build)}; the venv has $listed, and a mismatched pair crashes at load;" \
          "$(runtime_advice)"
      fi
      r_runtime=tflite_runtime r_rver=$tf
      echo "   $deb: not in $PINS; installed as asked (--coral-deb-unverified), built for" \
        "TensorFlow $tf like the venv's tflite_runtime: sha256 $sha"
    fi
  else
    row=""
    while read -r runtime r_rver; do
      row=$(pin_rows | awk -v r="$runtime" -v rv="$r_rver" -v p="$package" -v a="$arch" -v d="$distro" \
        '$1 == r && $2 == rv && $3 == p && $5 == a && $6 == d { print; exit }')
      [ -z "$row" ] || break
    done <<<"$runtimes"
    if [ -z "$row" ]; then
      if [ -z "$(pin_rows | awk -v p="$package" -v a="$arch" -v d="$distro" '$3 == p && $5 == a && $6 == d')" ]; then
        coral_refuse "no tested $package build for $arch on $distro in $PINS" \
          "(no proven pair exists for 32-bit Raspberry Pi OS, armhf: use the 64-bit OS)"
      fi
      coral_refuse "no libedgetpu in $PINS is built for the venv's runtime ($listed): libedgetpu" \
        "is built against one TensorFlow version, and a mismatched pair crashes at load;" \
        "$(runtime_advice)"
    fi
    read -r r_runtime r_rver _ version _ _ r_sha r_url <<<"$row"
    [ "$r_sha" != "-" ] || coral_refuse "no sha256 is pinned in $PINS for $r_url, and nothing" \
      "downloaded is installed unverified: download it yourself, check its sha256 (GitHub shows" \
      "each release asset's on the release page), then put it in the table, or run" \
      "sudo systemd/install.sh --coral$max_flags" \
      "--coral-deb FILE --coral-deb-unverified"
    CORAL_TMP=$(mktemp -d)
    deb="$CORAL_TMP/$(basename "$r_url")"
    echo "   downloading $r_url"
    curl -fsSL --proto '=https,file' -o "$deb" "$r_url" || coral_refuse "cannot download $r_url"
    sha=$(sha256sum "$deb" | cut -d' ' -f1)
    [ "$sha" = "$r_sha" ] || coral_refuse "the download has sha256 $sha, the pin in $PINS is" \
      "$r_sha: not installed"
    echo "   sha256 as pinned"
  fi
  runtime=$r_runtime

  echo "   $package $version, for $runtime $r_rver"
  [ "$CORAL_MAX" = 0 ] || max_warning
  if skipped apt; then
    echo "   apt-get install skipped (MASKDET_SKIP): $deb"
  else
    if [ "$CORAL_MAX" = 1 ]; then
      printf '%s\n' "libedgetpu1-max libedgetpu/accepted-eula boolean true" \
        "libedgetpu1-max libedgetpu/install-confirm-max boolean true" | debconf-set-selections
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb"  # with libusb-1.0-0
  fi
  [ -z "$CORAL_TMP" ] || rm -rf "$CORAL_TMP"
  CORAL_TMP=""

  install -d -m 0755 "$UDEV_DIR"
  rules=$(mktemp)
  if [ "$CORAL" = usb ]; then
    group=plugdev
    cat >"$rules" <<'RULES'
# The Coral USB Accelerator, for the plugdev group (written by maskdet's install.sh --coral):
# 1a6e:089a until libedgetpu has loaded its firmware, 18d1:9302 after.
SUBSYSTEM=="usb", ATTRS{idVendor}=="1a6e", ATTRS{idProduct}=="089a", MODE="0660", GROUP="plugdev"
SUBSYSTEM=="usb", ATTRS{idVendor}=="18d1", ATTRS{idProduct}=="9302", MODE="0660", GROUP="plugdev"
RULES
    install -m 0644 "$rules" "$UDEV_DIR/65-maskdet-edgetpu.rules"
    echo "   udev rule $UDEV_DIR/65-maskdet-edgetpu.rules (1a6e:089a, 18d1:9302: group plugdev)"
  else
    group=apex
    cat >"$rules" <<'RULES'
# The Coral PCIe / M.2 module's /dev/apex_N, for the apex group (maskdet's install.sh --coral=pcie).
SUBSYSTEM=="apex", MODE="0660", GROUP="apex"
RULES
    install -m 0644 "$rules" "$UDEV_DIR/65-maskdet-apex.rules"
    echo "   udev rule $UDEV_DIR/65-maskdet-apex.rules (/dev/apex_N: group apex)"
  fi
  rm -f "$rules"
  if skipped udev; then
    echo "   udevadm reload skipped (MASKDET_SKIP)"
  else
    udevadm control --reload-rules
    udevadm trigger
  fi
  if skipped user; then
    echo "   skipped (MASKDET_SKIP): usermod -aG $group $SERVICE_USER"
  else
    getent group "$group" >/dev/null || groupadd --system "$group"
    usermod -aG "$group" "$SERVICE_USER"
    echo "   $SERVICE_USER is in the $group group"
  fi

  # The service uses the runtime this libedgetpu is built for, whatever else the venv holds.
  install -d -m 0755 "$UNIT_DIR/maskdet.service.d"
  printf '%s\n' "# Written by install.sh --coral: $package $version is built for $runtime $r_rver." \
    "[Service]" "Environment=MASKDET_RUNTIME=$runtime" >"$UNIT_DIR/maskdet.service.d/coral.conf"
  chmod 0644 "$UNIT_DIR/maskdet.service.d/coral.conf"
  echo "   $UNIT_DIR/maskdet.service.d/coral.conf: the service uses $runtime"
  if skipped systemctl; then
    echo "   systemctl daemon-reload skipped (MASKDET_SKIP)"
  else
    systemctl daemon-reload
  fi

  if [ ! -f "$PREFIX/models/mask_classifier_int8_edgetpu.tflite" ]; then
    echo "   no $PREFIX/models/mask_classifier_int8_edgetpu.tflite yet: until it is there the" \
      "CPU runs the classifier. Compile it on an x86-64 Debian machine (maskdet-convert compile" \
      "models/mask_classifier_int8.tflite) and copy it into $PREFIX/models"
  fi
  if [ "$CORAL" = usb ]; then
    echo "   unplug the Coral and plug it in again, once: the rule applies to a device as it" \
      "appears. It draws up to 900 mA: a USB 3 port of a Pi on its 3 A (Pi 4) / 5 A (Pi 5)" \
      "supply, or a powered hub"
  else
    if [ -e /dev/apex_0 ]; then
      echo "   /dev/apex_0 is there"
    else
      echo "   no /dev/apex_0 yet: the gasket / apex driver is needed (gasket-dkms; kernels" \
        ">= 6.12 need a patched build, google/gasket-driver#36, #52); on a Pi 5 add" \
        "dtoverlay=pciex1-compat-pi5,no-mip and dtoverlay=pcie-32bit-dma-pi5 to" \
        "/boot/firmware/config.txt and run the 4K-page kernel (kernel=kernel8.img); then" \
        "reboot. See README.md, Coral Edge TPU"
    fi
  fi
  echo "   then: sudo systemctl restart maskdet; sudo $PREFIX/venv/bin/maskdet doctor --config" \
    "$CONF/config.yaml"
}

[ -z "$CORAL" ] || coral_setup
# Checked as the service sees it (the unit's environment).
MASKDET_MODELS="$PREFIX/models" MASKDET_CACHE="$CACHE_DIR" \
  "$PREFIX/venv/bin/maskdet" check-config "$CONF/config.yaml" || true
echo "done: edit $CONF/config.yaml, then: sudo systemctl start maskdet; journalctl -u maskdet -f"
