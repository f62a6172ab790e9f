"""`cameras[].ignore_regions`: polygons in fractions of the frame. A good one loads and passes
`maskdet check-config`; a bad one is refused at load with exit 78 and one line naming the file,
the camera, the region's index and the point."""
import pytest

from edge.config import load_config
from edge.errors import ConfigError
from tests.conftest import run_cli
from tests.config.helpers import assert_one_line_error, base_config, write_config

POSTER = [[0.7, 0.1], [0.95, 0.1], [0.95, 0.6], [0.7, 0.6]]
FOOT = [[0.0, 0.8], [0.3, 0.8], [0.3, 1.0]]
SCHEMA_ONLY = {"device_id": "test-pi", "mqtt": {"outbox_path": ":memory:"},
               "cameras": [{"name": "door", "source": {"type": "opencv", "url": "0"}},
                           {"name": "side", "source": {"type": "opencv", "url": "1"}}]}

# (the bad region given as cameras[0].ignore_regions[1], what the one line must name)
BAD = {
    "x above 1": ([[0.1, 0.1], [0.5, 0.1], [1.5, 0.5]], ["ignore_regions[1] point 2", "[1.5, 0.5]",
                                                        "between 0 and 1"]),
    "y below 0": ([[0.1, -0.2], [0.5, 0.1], [0.5, 0.5]], ["ignore_regions[1] point 0", "between 0 and 1"]),
    "pixels, not fractions": ([[900, 72], [1216, 72], [1216, 432]], ["ignore_regions[1] point 0",
                                                                     "width and height"]),
    "two points": ([[0.1, 0.1], [0.5, 0.5]], ["ignore_regions[1]", "at least 3"]),
    "collinear": ([[0.1, 0.1], [0.3, 0.3], [0.5, 0.5]], ["ignore_regions[1]", "no area"]),
    "a point of three numbers": ([[0.1, 0.1], [0.5, 0.1, 0.3], [0.5, 0.5]],
                                 ["ignore_regions[1] point 1", "two finite numbers"]),
    "a point of one number": ([[0.1, 0.1], [0.5], [0.5, 0.5]], ["ignore_regions[1] point 1"]),
}


def regions_of(config):
    return {c.name: c.ignore_regions for c in config.cameras}


def check(path):
    return run_cli("-m", "edge.cli", "check-config", str(path), timeout=120)


def assert_refused(proc, path, *words):
    assert proc.returncode == 78, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for word in (str(path), *words):
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    return lines[0]


def test_a_camera_ignores_nothing_unless_told(tmp_path):
    assert regions_of(load_config(write_config(tmp_path, {}, SCHEMA_ONLY))) == {"door": [], "side": []}


def test_good_regions_load_as_given(tmp_path):
    path = write_config(tmp_path, {"cameras[0].ignore_regions": [POSTER, FOOT]}, SCHEMA_ONLY)
    assert regions_of(load_config(path)) == {"door": [POSTER, FOOT], "side": []}


def test_corners_on_the_frame_edge_and_ints_are_taken(tmp_path):
    whole = [[0, 0], [1, 0], [1, 1], [0, 1]]
    path = write_config(tmp_path, {"cameras[1].ignore_regions": [whole]}, SCHEMA_ONLY)
    loaded = regions_of(load_config(path))["side"]
    assert loaded == [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]
    assert all(isinstance(v, float) for point in loaded[0] for v in point)


def test_check_config_accepts_good_regions(tmp_path):
    path = write_config(tmp_path, {"cameras[0].ignore_regions": [POSTER, FOOT]})
    proc = check(path)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout


@pytest.mark.parametrize("case", sorted(BAD))
def test_check_config_refuses_a_bad_region_naming_the_camera_region_and_point(tmp_path, case):
    region, words = BAD[case]
    path = write_config(tmp_path, {"cameras[0].ignore_regions": [POSTER, region]})
    assert_refused(check(path), path, "cameras[0]", "camera 'door'", *words)


@pytest.mark.parametrize("value, key, words", [
    ([[[0.1, 0.1], [0.5, 0.1], [0.5, float("nan")]]], "cameras[1].ignore_regions[0][2][1]", ["finite"]),
    ([[[0.1, 0.1], [0.5, 0.1], [0.5, "top"]]], "cameras[1].ignore_regions[0][2][1]", ["expected float"]),
    ([[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]], "cameras[1].ignore_regions[0][0]", ["expected a list"]),
    ([[{"x": 0.1, "y": 0.1}, [0.5, 0.1], [0.5, 0.5]]], "cameras[1].ignore_regions[0][0]",
     ["expected a list"]),
    ("everywhere", "cameras[1].ignore_regions", ["expected a list"]),
])
def test_a_region_of_the_wrong_shape_is_refused_with_its_key(tmp_path, value, key, words):
    # The loader's own rules: the key path goes down to the region, the point and the number.
    path = write_config(tmp_path, {"cameras[1].ignore_regions": value}, SCHEMA_ONLY)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert_one_line_error(caught.value, path, key, *words)


def test_the_second_camera_is_named_by_its_name(tmp_path):
    path = write_config(tmp_path, {"cameras[1].ignore_regions": [FOOT, FOOT, [[0.2, 0.2]] * 3]},
                        SCHEMA_ONLY)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = assert_one_line_error(caught.value, path, "cameras[1]", "camera 'side'",
                                 "ignore_regions[2]", "no area")
    assert "'door'" not in text


def test_check_config_refuses_nan_in_a_region_with_its_line(tmp_path):
    path = tmp_path / "config.yaml"
    config = base_config(tmp_path)
    path.write_text(f"""cameras:
  - name: door
    source: {{type: opencv, url: 0}}
    ignore_regions:
      - [[0.1, 0.1], [0.5, 0.1], [0.5, .nan]]
detector: {{type: yunet, model: {config['detector']['model']}}}
mqtt: {{outbox_path: ':memory:'}}
""")
    assert_refused(check(path), path, "cameras[0].ignore_regions[0][2][1] (line 5)", "finite")
