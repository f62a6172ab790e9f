"""The installed maskdet service as the doctor sees it: its user, its state folder, and the
`Environment=` settings of its systemd unit and drop-ins (what the service sees that a shell
does not: MASKDET_MODELS, MASKDET_CACHE, MASKDET_RUNTIME from `install.sh --coral`)."""
import glob
import os
import shlex

from edge.doctor.findings import at, read_text

SERVICE_USER = "maskdet"
STATE_DIR = "/var/lib/maskdet"  # made by systemd (StateDirectory=maskdet) when the service starts
UNIT_DIRS = ("etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")
DROP_IN_DIRS = tuple(f"{folder}/maskdet.service.d" for folder in UNIT_DIRS)


def unit_files(root="/"):
    """The installed maskdet.service (the first of UNIT_DIRS that has it), then its drop-ins."""
    files = [at(root, folder, "maskdet.service") for folder in UNIT_DIRS]
    files = [next((f for f in files if os.path.isfile(f)), None)]
    for folder in DROP_IN_DIRS:
        files += sorted(glob.glob(at(root, folder, "*.conf")))
    return list(filter(None, files))


def environment_settings(text):
    """[(name, value)] of the `Environment=` lines of a unit file's text, in order."""
    found = []
    for line in text.splitlines():
        if not line.startswith("Environment="):
            continue
        try:
            words = shlex.split(line[len("Environment="):])
        except ValueError:
            continue
        found += [tuple(word.split("=", 1)) for word in words if "=" in word]
    return found


def service_environment(root="/"):
    """{name: (value, file)} of the `Environment=` settings of the installed maskdet.service and
    its drop-ins (a later file wins, as in systemd): what the service sees that a shell does not,
    e.g. MASKDET_MODELS, MASKDET_CACHE, and MASKDET_RUNTIME from `install.sh --coral`."""
    found = {}
    for path in unit_files(root):
        try:
            text = read_text(path)
        except OSError:
            continue
        for name, value in environment_settings(text):
            found[name] = (value, "/" + os.path.relpath(path, root))
    return found


def service_runtime(environ=None, root="/"):
    """The runtime the service is told to use ($MASKDET_RUNTIME, else `Environment=
    MASKDET_RUNTIME=` of the unit or a drop-in, as `install.sh --coral` writes it): (name or
    None, where it was set)."""
    environ = os.environ if environ is None else environ
    if environ.get("MASKDET_RUNTIME"):
        return environ["MASKDET_RUNTIME"], "$MASKDET_RUNTIME"
    return service_environment(root).get("MASKDET_RUNTIME", (None, None))
