"""Which (TFLite runtime, libedgetpu build) pairs work: a small table of what is known, and the
verdict on a pair. libedgetpu is built against one TensorFlow version; a runtime of another
version crashes it (SIGSEGV) while the delegate loads, or makes `allocate_tensors()` fail.

Sources (gathered in ../shared/README.md, "The Coral Edge TPU in the field"):
- Coral's own libedgetpu1-std / -max 16.0 is built against TensorFlow 2.5.0
  (google-coral/libedgetpu tag release-grouper: workspace.bzl, debian/changelog), shipped with
  Coral's tflite_runtime 2.5.0.post1 wheels (google-coral/pycoral release v2.0.0).
- With runtimes newer than about 2.11 users report segmentation faults at load with that build
  (google-coral/edgetpu#812, #821; tensorflow/tensorflow#62371, TF 2.14 on a Pi); older
  mismatches raise `RuntimeError: Internal: Unsupported data type in custom op handler`
  (google-coral/edgetpu#44, #126).
- feranick/libedgetpu builds one libedgetpu per TensorFlow version (versions `16.0tf<TF>-1`,
  tags such as `16.0TF2.17.1-1`), with matching tflite_runtime wheels in feranick/TFlite-builds.
  Frigate (blakeblackshear/frigate @ e3fa701, docker/main/install_deps.sh and
  requirements-wheels.txt) ships libedgetpu 16.0TF2.17.1 with tflite_runtime 2.17.1 (cp311,
  aarch64): the tested pair this project installs (systemd/coral-pins.txt).
- No libedgetpu is built for ai-edge-litert (LiteRT), and no proven pair exists for 32-bit
  Raspberry Pi OS (armhf).

systemd/coral-pins.txt (what `install.sh --coral` installs) must only hold TESTED pairs;
tests/doctor checks that it does.
"""
import re
from dataclasses import dataclass

OK, WARN, FAIL = "ok", "warn", "FAIL"

# (runtime, runtime version, TF version libedgetpu was built for) -> where the pair is proven.
TESTED = {
    ("tflite_runtime", "2.17.1", "2.17.1"): "Frigate's pair (blakeblackshear/frigate @ e3fa701, "
                                            "docker/main/install_deps.sh)",
    ("tflite_runtime", "2.5.0", "2.5.0"): "Coral's own pair (libedgetpu 16.0 and tflite_runtime "
                                          "2.5.0.post1)",
}
# Coral's own builds (Debian version without a `tf` part) and the TensorFlow each was built for,
# where known. 14.x / 15.0 predate 16.0 (built for TF 2.5.0): older still, the exact version
# is not recorded here.
CORAL_BUILDS = {"16.0": "2.5.0"}
CRASH_ABOVE = (2, 11)  # runtimes newer than this crash Coral's own (TF 2.5) builds at load
MATCHED_PAIR = ("tflite-runtime 2.17.1 (feranick/TFlite-builds v2.17.1, e.g. "
                "tflite_runtime-2.17.1-cp311-cp311-linux_aarch64.whl) with libedgetpu1-std "
                "16.0tf2.17.1 (feranick/libedgetpu 16.0TF2.17.1-1)")
INSTALL_MATCHED = (f"install the tested pair, {MATCHED_PAIR}: `sudo systemd/install.sh --coral` "
                   "checks the venv's runtime and says what to install")


@dataclass(frozen=True)
class Build:
    """What a libedgetpu Debian version says about the build: who made it and for which TF."""

    version: str
    maker: str        # coral | feranick | unknown
    tf: str = None    # the TensorFlow version it was built against, when known


@dataclass(frozen=True)
class Verdict:
    """A pair's status (ok / warn / FAIL), what is known about it, and what to do."""

    status: str
    detail: str
    fix: str = None


def numbers(version, count=3):
    """(2, 17, 1) for "2.17.1.post1" (missing parts are 0); None when it does not start with a
    number."""
    found = re.match(r"(\d+(?:\.\d+)*)", version or "")
    if not found:
        return None
    parts = [int(p) for p in found.group(1).split(".")][:count]
    return tuple(parts + [0] * (count - len(parts)))


def short(version):
    """"2.5.0" for "2.5.0.post1": the release a runtime version names."""
    parts = numbers(version)
    return ".".join(map(str, parts)) if parts else version


def parse_build(version):
    """The Build a libedgetpu package version stands for: `16.0tf2.17.1-1` (feranick, TF
    2.17.1), `16.0` (Coral, TF 2.5.0), `15.0` / `14.1` (Coral, older TF), else unknown."""
    found = re.match(r"\d+(?:\.\d+)*tf(\d+\.\d+(?:\.\d+)?)", version, re.IGNORECASE)
    if found:
        return Build(version, "feranick", short(found.group(1)))
    if re.fullmatch(r"1[0-6]\.\d+(-\d+)?", version):
        return Build(version, "coral", CORAL_BUILDS.get(version.split("-")[0]))
    return Build(version, "unknown")


def verdict(runtime, runtime_version, libedgetpu_version):
    """The Verdict on running libedgetpu `libedgetpu_version` (a Debian package version) with
    the TFLite runtime `runtime` (ai_edge_litert, tflite_runtime or tensorflow) of
    `runtime_version`."""
    build = parse_build(libedgetpu_version)
    pair = f"{runtime} {runtime_version} with libedgetpu {libedgetpu_version}"
    if runtime == "ai_edge_litert":
        return Verdict(FAIL, f"{pair}: no libedgetpu build is known to work with ai-edge-litert "
                       "(none is built for it; a mismatched libedgetpu crashes at load)",
                       INSTALL_MATCHED)
    release = short(runtime_version)
    if build.tf is not None and (runtime, release, build.tf) in TESTED:
        return Verdict(OK, f"{pair}: a tested pair ({TESTED[(runtime, release, build.tf)]})")
    if build.maker == "unknown":
        return Verdict(WARN, f"{pair}: an unknown libedgetpu build (the TensorFlow version it "
                       "was built against cannot be told from its version)", INSTALL_MATCHED)
    runtime_numbers = numbers(runtime_version) or (0, 0, 0)
    if build.maker == "coral" and runtime_numbers[:2] > CRASH_ABOVE:
        built = f"TensorFlow {build.tf}" if build.tf else "a TensorFlow older than 2.5"
        return Verdict(FAIL, f"{pair}: Coral's libedgetpu {build.version} is built against "
                       f"{built} and crashes (SIGSEGV) at load with runtimes newer than about "
                       "2.11 (google-coral/edgetpu#812, #821; tensorflow/tensorflow#62371)",
                       INSTALL_MATCHED)
    if build.tf is not None and build.tf == release:
        return Verdict(WARN, f"{pair}: built for the same TensorFlow version ({build.tf}), but "
                       "not one of the tested pairs", INSTALL_MATCHED)
    built = f"TensorFlow {build.tf}" if build.tf else "an older TensorFlow"
    return Verdict(FAIL, f"{pair}: libedgetpu is built against {built}, the runtime is "
                   f"{release}: expect a crash at load or `Unsupported data type in custom op "
                   "handler` (google-coral/edgetpu#44, #126)", INSTALL_MATCHED)
