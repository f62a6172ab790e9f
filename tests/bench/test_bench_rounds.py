"""How `maskdet bench` keeps the fastest of its interleaved timing rounds."""
from edge.bench.report import rounds
from edge.bench.run import fastest_rounds


def row(total, detect):
    return {"frames": 60, "stages_ms": {"total": {"median": total}, "detect": {"median": detect}}, "fps": 1000 / total}


def test_the_round_with_the_lowest_median_total_is_kept_per_key():
    first = {"yunet@480 / litert / 720p": row(24.0, 8.6), "res10 / litert / 720p": row(70.0, 60.0)}
    second = {"yunet@480 / litert / 720p": row(17.5, 6.2), "res10 / litert / 720p": row(75.0, 62.0)}
    best = fastest_rounds([first, second, {}])
    assert best["yunet@480 / litert / 720p"]["stages_ms"]["detect"]["median"] == 6.2
    assert best["res10 / litert / 720p"]["stages_ms"]["total"]["median"] == 70.0
    assert {r["rounds"] for r in best.values()} == {3}
    assert rounds({"latency": best}) == 3 and rounds({}) == 1
