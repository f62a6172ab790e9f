"""/metrics' text format, parsed back by a strict reading of the Prometheus exposition format."""
import math
import re

from edge.service.metrics import Family, Histogram, Metrics, render

SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? '
                    r'(-?[0-9.e+-]+|NaN|\+Inf|-Inf)')


def parse(text):
    """{family: {"type", "help", "samples": [(name, labels text, value)]}}; AssertionError on
    anything the format does not allow."""
    assert text.endswith("\n")
    families, current = {}, None
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in families, f"{name} twice"
            current = families[name] = {"help": line, "samples": []}
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert current is families[name] and kind in ("counter", "gauge", "histogram")
            current["type"] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample line: {line!r}"
            assert match.group(1).startswith(next(reversed(families))), line
            current["samples"].append((match.group(1), match.group(2) or "", float(match.group(3))))
    return families


def test_histograms_are_cumulative_and_end_with_inf_equal_to_the_count():
    metrics = Metrics()
    for ms in (0.5, 3, 3, 40, 9000):
        metrics.observe_latency("detect", ms)
    metrics.count_frame("door")
    metrics.count_frame("door", analysed=False)
    metrics.count_event("door", "no_mask")
    metrics.count_command("rejected_not_json")
    families = parse(render(metrics.families()))
    latency = families["maskdet_stage_latency_seconds"]
    assert latency["type"] == "histogram"
    buckets = [v for n, _, v in latency["samples"] if n.endswith("_bucket")]
    assert buckets == sorted(buckets) and buckets[-1] == 5
    assert 'le="+Inf"' in latency["samples"][len(buckets) - 1][1]
    count = [v for n, _, v in latency["samples"] if n.endswith("_count")][0]
    total = [v for n, _, v in latency["samples"] if n.endswith("_sum")][0]
    assert count == 5 and math.isclose(total, 9.0465)
    assert families["maskdet_frames_analysed_total"]["samples"] == [
        ("maskdet_frames_analysed_total", '{camera="door"}', 1.0)]
    assert families["maskdet_events_total"]["samples"][0][1] == '{camera="door",type="no_mask"}'


def test_labels_are_escaped_and_unknown_values_left_out():
    text = render([Family("x_total", "counter", 'help with "quotes"\nand a newline')
                   .add(1, camera='a"b\\c\nd').add(None, camera="gone"),
                   Family("empty", "gauge", "no samples")])
    families = parse(text)
    assert list(families) == ["x_total"] and len(families["x_total"]["samples"]) == 1
    assert '\\"' in text and "\\n" in text and "gone" not in text


def test_the_parser_can_fail():
    try:
        parse("maskdet_x{camera=door} 1\n")
    except AssertionError:
        return
    raise AssertionError("an unquoted label value was accepted")


def test_a_histogram_alone():
    h = Histogram((1.0, 2.0))
    h.observe(1.5)
    h.observe(3)
    family = Family("h", "histogram", "h")
    h.samples(family)
    assert [v for _, _, v in family.samples] == [0, 1, 2, 4.5, 2]
