"""``dcaseg segment -m MODEL -i INPUT -o OUTPUT``: organs (and attention maps) for one volume or a folder.

With ``--progress jsonl`` stdout carries only JSON events (docs/architecture.md): ``stage``, ``progress``,
``warning``, ``case`` (folder input), ``done`` with the written ``outputs``, ``error``. Every file is
written atomically; a case that fails leaves none of its files behind, and so does SIGTERM (handled as
Ctrl-C). No output may be an input (the CT in any spelling or link, a file inside the DICOM series or
the model) or, for folders, the input folder.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from ..aliasing import check_apart, check_output_folder, entry_holding
from ..data.imageio import GeometryWarning, image_extension, strip_image_extension, write_image_atomic
from ..errors import DcaError, InputError
from ..events import Reporter, reporter_for
from ..grouping import GROUP_NAMES
from ..inference import DEFAULT_OVERLAP, Prediction, Predictor, PredictorOptions
from ..inference.devices import DEVICE_CHOICES, PRECISIONS, resolve_device, use_all_cpu_cores
from ..outputs.dicom_seg import check_sources, read_source_series
from ..outputs.formats import (
    EXTENSIONS_HELP,
    FOLDER_EXTENSIONS,
    OUTPUT_KEYS,
    SEGMENTATION_KEYS,
    format_paths,
    output_format,
    output_stem,
    parse_formats,
    write_format,
)

HELP = "segment organs in a CT (file, DICOM folder or folder of volumes) with a model package"
MAPS_EXTENSION = ".nii.gz"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", type=Path, required=True, help="model package (folder or .zip)")
    parser.add_argument("-i", "--input", type=Path, required=True,
                        help="image file (.nii.gz, .nii, .nrrd, .mha), DICOM series folder, or a folder of volumes")
    parser.add_argument("-o", "--output", type=Path, required=True,
                        help="label map file (e.g. out.nii.gz), Slicer segmentation (out.seg.nrrd) or DICOM SEG "
                             "(out.dcm); a folder when the input is a folder")
    parser.add_argument("--format", default=None, metavar="FORMAT[,FORMAT]",
                        help="labelmap, seg.nrrd (Slicer) and/or dicom-seg (DICOM series input), comma-separated; "
                             "default: what -o's extension names (folders: labelmap as .nii.gz)")
    parser.add_argument("--attention", action="store_true",
                        help="also write <stem>_attention_head/medium/tail.nii.gz (which expert the model trusted)")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write <stem>_probabilities.nii.gz (one float component per class, large)")
    parser.add_argument("--fused", action="store_true",
                        help="also write <stem>_fused.nii.gz (the experts' logit-concatenation labels)")
    parser.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (default auto: CUDA, then MPS, then CPU)")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP,
                        help=f"fraction of a window shared with its neighbour (default {DEFAULT_OVERLAP})")
    parser.add_argument("--windows-per-batch", type=int, default=None,
                        help="windows per forward pass (default: 4 on CUDA and for windows up to 48³, else 1)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto (default: bf16 on CUDA and on CPUs with native bf16) or fp32")
    parser.add_argument("--progress", choices=("bar", "jsonl", "none"), default="bar",
                        help="bar (people, stderr), jsonl (programs: JSON events on stdout) or none")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (folder: redo done cases)")
    parser.add_argument("--shard", default=None, metavar="I/N",
                        help="folder input: process only cases I, I+N, I+2N, ... of the sorted list (0 <= I < N)")


def run(args: argparse.Namespace) -> int:
    reporter = reporter_for(args.progress)
    try:
        with geometry_warnings_as_events(reporter):
            return _run(args, reporter)
    except DcaError as error:
        if args.progress == "jsonl":
            reporter.error(str(error))
        raise


def _run(args: argparse.Namespace, reporter: Reporter) -> int:
    if not 0.0 <= args.overlap < 1.0:
        raise InputError(f"--overlap {args.overlap}: use a fraction at least 0 and below 1")
    if args.windows_per_batch is not None and args.windows_per_batch < 1:
        raise InputError(f"--windows-per-batch {args.windows_per_batch}: use at least 1")
    folder_cases = list_cases(args.input) if args.input.is_dir() else None
    shard = parse_shard(args.shard) if args.shard is not None else None
    if folder_cases is None and shard is not None:
        raise InputError("--shard needs a folder of volumes as input")
    if folder_cases is not None and output_format(args.output):
        raise InputError(f"{args.output}: the input is a folder, so the output must be a folder too")
    args.formats = parse_formats(args.format, args.output, folder_input=folder_cases is not None)
    if folder_cases is None:
        targets = output_paths(args.output, args.attention, args.probabilities, args.fused, args.formats)
        check_apart(targets.values(), [args.input, args.model])
        check_writable(targets, args.overwrite)
    if "dicom-seg" in args.formats:
        check_sources(args.input, folder_cases)
    if folder_cases is not None:
        folder_cases = cases_apart_from(folder_cases, args.input, args.output, reporter)
    if resolve_device(args.device).type == "cpu":
        use_all_cpu_cores()
    reporter.stage("loading model")
    options = PredictorOptions(device=args.device, overlap=args.overlap, precision=args.precision,
                               windows_per_batch=args.windows_per_batch)
    predictor = Predictor(args.model, options, reporter)
    classes = [c.to_dict() for c in predictor.meta.classes]
    if folder_cases is None:
        written = segment_case(predictor, args.input, targets, args)
        reporter.emit("done", outputs={k: str(v) for k, v in written.items()}, classes=classes)
        return 0
    if shard is not None:
        folder_cases = folder_cases[shard[0]::shard[1]]
    return segment_folder(predictor, folder_cases, args, reporter, classes)


# ----------------------------------------------------------------------------- one case

def output_paths(output: Path, attention: bool, probabilities: bool, fused: bool,
                 formats: tuple[str, ...] = ("labelmap",)) -> dict[str, Path]:
    """Files to write: the formats' files (``output`` and its siblings) and the requested maps beside
    them (``<stem>_<map>.nii.gz``)."""
    if output_format(output) is None:
        raise InputError(f"{output}: the output needs an extension: {EXTENSIONS_HELP}")
    stem = output_stem(output)
    paths = format_paths(output, formats)
    if attention:
        paths.update({f"attention_{g}": Path(f"{stem}_attention_{g}{MAPS_EXTENSION}") for g in GROUP_NAMES})
    if probabilities:
        paths["probabilities"] = Path(f"{stem}_probabilities{MAPS_EXTENSION}")
    if fused:
        paths["fused"] = Path(f"{stem}_fused{MAPS_EXTENSION}")
    return paths


def check_writable(paths: dict[str, Path], overwrite: bool) -> None:
    """Fail before any work if an output exists (without ``overwrite``) or its folder cannot be written."""
    for path in paths.values():
        if path.exists() and not overwrite:
            raise InputError(f"{path} already exists; use --overwrite to replace it")
        if path.is_dir():
            raise InputError(f"cannot write {path}: it is a folder")
    first = next(iter(paths.values()))
    existing = next(p for p in (first.parent, *first.parent.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {first}: {existing} is not a writable folder")


def segment_case(predictor: Predictor, source: Path, targets: dict[str, Path],
                 args: argparse.Namespace) -> dict[str, Path]:
    """Predict one volume and write its files; on failure remove what this call wrote."""
    dicom_sources = read_source_series(source) if OUTPUT_KEYS["dicom-seg"] in targets else None
    try:
        prediction = predictor.predict(source, attention=args.attention, probabilities=args.probabilities,
                                       fused=args.fused)
    except (RuntimeError, MemoryError) as error:
        raise DcaError(f"{source}: segmentation failed ({one_line(error)})") from None
    predictor.reporter.stage("writing")
    images = images_to_write(prediction)
    written: list[Path] = []
    try:
        # the formats' files last: they mark a case done
        for name in sorted(targets, key=lambda key: key in OUTPUT_KEYS.values()):
            if name in images:
                write_image_atomic(images[name], targets[name])
            elif name in SEGMENTATION_KEYS:
                write_format(name, prediction.labels, targets[name], predictor.meta, dicom_sources)
            else:
                continue
            written.append(targets[name])
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return {name: path for name, path in targets.items() if name in images or name in SEGMENTATION_KEYS}


@contextlib.contextmanager
def geometry_warnings_as_events(reporter: Reporter) -> Iterator[None]:
    """Report each ``GeometryWarning`` of the writers (a format that cannot hold the geometry) as a warning event."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", GeometryWarning)
        show_other = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            if issubclass(category, GeometryWarning):
                reporter.warning(str(message))
            else:
                show_other(message, category, filename, lineno, file, line)
        warnings.showwarning = show
        yield


def images_to_write(prediction: Prediction) -> dict:
    images = {"labels": prediction.labels}
    for group, image in (prediction.attention or {}).items():
        images[f"attention_{group}"] = image
    if prediction.probabilities is not None:
        images["probabilities"] = prediction.probabilities
    if prediction.fused_labels is not None:
        images["fused"] = prediction.fused_labels
    return images


def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200]}" if text else type(error).__name__


# ----------------------------------------------------------------------------- folders

def list_cases(folder: Path) -> list[Path] | None:
    """Volumes of a folder (image files and series sub-folders), sorted; None if it is one DICOM series."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    cases = [p for p in entries if (p.is_file() and image_extension(p)) or p.is_dir()]
    if cases:
        return cases
    if not entries:
        raise InputError(f"{folder}: empty folder, nothing to segment")
    return None


def cases_apart_from(cases: list[Path], input_folder: Path, output: Path, reporter: Reporter) -> list[Path]:
    """Refuse an output folder that is the input folder; leave out the input entry that holds the output folder."""
    check_output_folder(output, input_folder)
    held = entry_holding(output, input_folder)
    if held is None:
        return cases
    reporter.warning(f"{input_folder / held}: left out, it holds the output folder {output}")
    return [case for case in cases if case.name != held]


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: use I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {text!r}: need N >= 1 and 0 <= I < N")
    return index, count


def case_name(path: Path) -> str:
    return strip_image_extension(path) if path.is_file() else path.name


def segment_folder(predictor: Predictor, cases: list[Path], args: argparse.Namespace, reporter: Reporter,
                   classes: list[dict]) -> int:
    """Segment every case; skip those already done (unless --overwrite); go on past failures."""
    counts = {"done": 0, "skipped": 0, "failed": 0}
    failures: dict[str, str] = {}
    for index, source in enumerate(cases, start=1):
        name = case_name(source)
        targets = output_paths(args.output / f"{name}{FOLDER_EXTENSIONS[args.formats[0]]}", args.attention,
                               args.probabilities, args.fused, args.formats)
        if not args.overwrite and all(path.exists() for path in targets.values()):
            status, detail = "skipped", "outputs exist"
        else:
            reporter.emit("case", case=name, index=index, total=len(cases), status="started")
            try:
                check_apart(targets.values(), [source, args.model])
                check_writable(targets, overwrite=True)
                segment_case(predictor, source, targets, args)
                status, detail = "done", ""
            except DcaError as error:
                status, detail = "failed", str(error)
                failures[name] = detail
                reporter.warning(f"{name}: {detail}")
        counts[status] += 1
        reporter.emit("case", case=name, index=index, total=len(cases), status=status, message=detail)
        if args.progress == "bar":
            print(f"[{index}/{len(cases)}] {name}: {status}{f' ({detail})' if detail else ''}", file=sys.stderr)
    reporter.emit("done", outputs={"folder": str(args.output)}, summary=counts, failed=failures, classes=classes)
    if args.progress != "jsonl":
        print(f"{len(cases)} case(s): {counts['done']} segmented, {counts['skipped']} skipped (already done), "
              f"{counts['failed']} failed")
        for name, detail in failures.items():
            print(f"  failed {name}: {detail}")
    return 1 if counts["failed"] else 0
