"""`maskdet bench --daemon-minutes`: the daemon on the looped shared videos, briefly."""
from tests.conftest import Broker, shared_path


def test_a_short_daemon_run_reports_frames_events_and_memory(tmp_path):
    shared_path("data", "videos", "one_unmasked.mp4")
    Broker(tmp_path)  # skips without mosquitto
    from edge.bench.daemon_run import run_daemon_bench

    result = run_daemon_bench(0.1)
    assert set(result["frames_processed"]) == set(result["cameras"])
    assert all(n > 0 for n in result["frames_processed"].values()), result
    assert result["fps_total"] > 0 and result["rss_mib"]
    assert result["events"] >= 1, result  # the unmasked person is decided within seconds
    # decided people are re-classified every few frames only, so fewer faces than frames
    assert 0 < result["faces_classified"] and result["faces_skipped"] > 0, result
    assert result["classifier_invokes_per_frame"] == round(
        result["faces_classified"] / sum(result["frames_processed"].values()), 3)
