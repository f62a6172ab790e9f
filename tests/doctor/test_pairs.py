"""The (TFLite runtime, libedgetpu) verdicts, and the pin table install.sh installs from: every row
of systemd/coral-pins.txt must be a tested pair."""
import os
import re

import pytest

from edge.doctor import pairs
from tests.conftest import REPO_ROOT

PINS = os.path.join(REPO_ROOT, "systemd", "coral-pins.txt")


@pytest.mark.parametrize("version, maker, tf", [
    ("16.0tf2.17.1-1", "feranick", "2.17.1"),
    ("16.0TF2.15.0-1.bookworm", "feranick", "2.15.0"),
    ("16.0", "coral", "2.5.0"),
    ("15.0", "coral", None),
    ("14.1", "coral", None),
    ("16.0pp3", "unknown", None),
    ("1.0~local", "unknown", None),
])
def test_a_libedgetpu_version_says_who_built_it_and_for_which_tensorflow(version, maker, tf):
    build = pairs.parse_build(version)
    assert (build.maker, build.tf) == (maker, tf)


def test_frigates_pair_is_tested():
    found = pairs.verdict("tflite_runtime", "2.17.1", "16.0tf2.17.1-1")
    assert found.status == pairs.OK and "tested pair" in found.detail and "Frigate" in found.detail


def test_corals_own_pair_is_tested():
    assert pairs.verdict("tflite_runtime", "2.5.0.post1", "16.0").status == pairs.OK


def test_corals_libedgetpu_with_a_newer_runtime_is_the_known_crash():
    found = pairs.verdict("tflite_runtime", "2.14.0", "16.0")
    assert found.status == pairs.FAIL
    assert "TensorFlow 2.5.0" in found.detail and "SIGSEGV" in found.detail
    assert "edgetpu#812" in found.detail
    assert "tflite-runtime 2.17.1" in found.fix and "install.sh --coral" in found.fix


def test_ai_edge_litert_has_no_libedgetpu():
    found = pairs.verdict("ai_edge_litert", "2.3.0", "16.0tf2.17.1-1")
    assert found.status == pairs.FAIL and "ai-edge-litert" in found.detail


def test_a_build_for_another_tensorflow_fails_and_names_both_versions():
    found = pairs.verdict("tflite_runtime", "2.16.1", "16.0tf2.17.1-1")
    assert found.status == pairs.FAIL
    assert "TensorFlow 2.17.1" in found.detail and "2.16.1" in found.detail


def test_the_same_tensorflow_untested_is_a_warning():
    assert pairs.verdict("tflite_runtime", "2.16.1", "16.0tf2.16.1-1").status == pairs.WARN
    assert pairs.verdict("tensorflow", "2.17.1", "16.0tf2.17.1-1").status == pairs.WARN


def test_an_unknown_build_is_a_warning():
    assert pairs.verdict("tflite_runtime", "2.17.1", "16.0pp3").status == pairs.WARN


def pin_rows(path=PINS):
    with open(path, encoding="utf-8") as handle:
        return [line.split() for line in handle if line.strip() and not line.lstrip().startswith("#")]


def test_every_pinned_libedgetpu_is_a_tested_pair_with_its_upstream_address():
    rows = pin_rows()
    assert rows
    for row in rows:
        assert len(row) == 8, row
        runtime, runtime_version, package, version, arch, distro, sha256, url = row
        assert pairs.verdict(runtime, runtime_version, version).status == pairs.OK, row
        assert package in ("libedgetpu1-std", "libedgetpu1-max")
        assert arch in ("arm64", "amd64") and distro in ("bookworm", "trixie")
        assert sha256 == "-" or re.fullmatch(r"[0-9a-f]{64}", sha256), row
        tf = pairs.parse_build(version).tf
        assert url == (f"https://github.com/feranick/libedgetpu/releases/download/16.0TF{tf}-1/"
                       f"{package}_{version}.{distro}_{arch}.deb"), row
    # One row per file: install.sh picks the first match.
    keys = [(r[0], r[1], r[2], r[4], r[5]) for r in rows]
    assert len(keys) == len(set(keys))
    assert not [r for r in rows if r[4] == "armhf"]  # no proven pair on 32-bit Raspberry Pi OS
