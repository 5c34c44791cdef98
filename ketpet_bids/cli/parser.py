"""Command-line parser: argparse → :class:`~ketpet_bids.settings.Settings`.

The parser only checks the shape of the arguments; checks against the data (files, fields,
labels) happen in :mod:`ketpet_bids.cli.run` before any processing, and every problem becomes
an :class:`~ketpet_bids.errors.InputError` (exit code 2).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from ketpet_bids import __version__
from ketpet_bids.errors import InputError
from ketpet_bids.settings import Settings

PLUGINS = ("MultiProc", "Linear", "SLURM", "SLURMGraph", "SGE", "SGEGraph", "PBS", "PBSGraph")
PRESETS: dict[str, dict[str, Any]] = {
    # [11C]K-2: late-window uptake ratio to a whole-brain pseudo-reference (no receptor-free
    # region exists for AMPA receptors); Logan VT is added by the kinetics stage when blood
    # data exist.
    "k2": {"models": ("suvr",), "ref_region": "wholebrain", "suvr_window": (1800.0, 3000.0)},
}


def build_parser() -> argparse.ArgumentParser:
    """The ``ketpet-bids`` argument parser (also rendered in the documentation)."""
    parser = argparse.ArgumentParser(
        prog="ketpet-bids",
        description="ketpet_bids: BIDS-App for dynamic PET — head-motion correction, PET→T1w "
        "co-registration, regions, partial-volume correction, kinetic modelling and group "
        "statistics.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("bids_dir", type=Path, help="root of the input BIDS dataset")
    parser.add_argument("output_dir", type=Path, help="where derivatives are written")
    parser.add_argument("analysis_level", choices=("participant", "group"),
                        help="participant: process each PET run; group: statistics across "
                        "participants from participant-level outputs")
    parser.add_argument("--version", action="version", version=f"ketpet-bids {__version__}")

    sel = parser.add_argument_group("selecting inputs")
    sel.add_argument("--participant-label", "--participant_label", nargs="+", default=[],
                     metavar="LABEL", help="participants to process (with or without 'sub-')")
    sel.add_argument("--session-label", nargs="+", default=[], metavar="LABEL",
                     help="sessions to process (with or without 'ses-')")
    sel.add_argument("--tracer-label", nargs="+", default=[], metavar="LABEL",
                     help="tracer (trc entity) to process")
    sel.add_argument("--rec-label", nargs="+", default=[], metavar="LABEL",
                     help="reconstruction (rec entity) to process")
    sel.add_argument("--run-label", nargs="+", default=[], metavar="LABEL",
                     help="runs (run entity) to process")
    sel.add_argument("--bids-filter-file", type=Path, metavar="FILE",
                     help='JSON with pybids filters per input, e.g. {"pet": {"trc": "K2"}}')
    sel.add_argument("--skip-bids-validation", action="store_true",
                     help="do not run the BIDS validator on the input dataset")

    perf = parser.add_argument_group("performance and execution")
    perf.add_argument("-w", "--work-dir", type=Path,
                      help="working directory for intermediate results; reuse it to resume "
                      "(default: OUTPUT_DIR_work beside OUTPUT_DIR)")
    perf.add_argument("--nprocs", type=int, default=os.cpu_count() or 1,
                      help="processes run in parallel")
    perf.add_argument("--omp-nthreads", type=int, default=1,
                      help="threads per process (ITK/BLAS)")
    perf.add_argument("--mem-gb", type=float, help="memory available to the run (GB)")
    perf.add_argument("--plugin", choices=PLUGINS, default="MultiProc",
                      help="nipype execution plugin")
    perf.add_argument("--plugin-config", type=Path, metavar="FILE",
                      help="JSON or YAML with plugin arguments (queue, memory, time, …)")
    perf.add_argument("--seed", type=int, default=20261130, help="random seed for registration")
    perf.add_argument("--no-progress", action="store_true",
                      help="do not print progress lines while processing")

    proc = parser.add_argument_group("processing")
    proc.add_argument("--preset", choices=sorted(PRESETS),
                      help="tracer defaults (k2: SUVR 30–50 min, whole-brain reference); "
                      "options given explicitly win")
    proc.add_argument("--hmc-off", action="store_true", help="skip head-motion correction")
    proc.add_argument("--hmc-start-time", type=float, default=120.0, metavar="SEC",
                      help="frames starting before this time inherit the first later frame's "
                      "motion estimate")
    proc.add_argument("--hmc-fwhm", type=float, default=6.0, metavar="MM",
                      help="smoothing applied to frames before motion estimation")
    proc.add_argument("--coreg", choices=("ants", "identity"), default="ants",
                      help="PET→T1w co-registration (identity: already aligned)")
    proc.add_argument("--atlas", nargs="+", default=[], metavar="NAME|PATH",
                      help="atlases: 'default' (combined template atlas: aseg nuclei, "
                      "Schaefer cortex, MASSP habenula; needs TemplateFlow files), 'brain' "
                      "(one whole-brain region), or a label image with a same-named .tsv "
                      "(index name) in T1w or template space (--atlas-space). Default: the "
                      "anatomical derivatives' and FreeSurfer's segmentations when given, "
                      "else 'default'")
    proc.add_argument("--atlas-space", metavar="SPACE",
                      help="space of the --atlas PATH images: T1w or MNI152NLin2009cAsym "
                      "('MNI'; warped into each T1w with the template registration). Default: "
                      "each file's space- entity, else T1w")
    proc.add_argument("--fs-subjects-dir", type=Path, metavar="DIR",
                      help="FreeSurfer SUBJECTS_DIR with aparc+aseg per subject")
    proc.add_argument("--anat-derivatives", type=Path, metavar="DIR",
                      help="sMRIPrep/fMRIPrep-style derivatives to use instead of recomputing "
                      "(desc-preproc_T1w, desc-brain_mask, label-<GM|WM|CSF>_probseg, seg-<name>_dseg)")
    proc.add_argument("--anat-reference", default="first", metavar="first|unbiased|ses-<label>",
                      type=_anat_reference,
                      help="anatomical reference shared by all of a subject's sessions: the "
                      "first session's T1w, an unbiased rigid mid-space average of all "
                      "sessions' T1w images, or a chosen session's T1w")
    proc.add_argument("--tac-method", choices=("weighted", "unmix"), default="weighted",
                      help="regional means: 'weighted' by the fraction of each PET voxel in the "
                      "region, or 'unmix' (solve for region values given the fractions, a GTM "
                      "without PSF; exact when the atlas labels every tissue with activity)")
    proc.add_argument("--pvc", nargs="+", default=[], metavar="METHOD",
                      help="partial-volume correction methods")
    proc.add_argument("--pvc-psf", nargs="+", type=float, default=[], metavar="FWHM",
                      help="scanner PSF FWHM in mm (one value, or x y z)")
    proc.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                      help="kinetic models (default: suvr)")
    proc.add_argument("--ref-region", default=None, metavar="NAME",
                      help="reference region: wholebrain, white-matter, cerebellum, or "
                      "region names joined by '+' (default: wholebrain)")
    proc.add_argument("--suvr-window", nargs=2, type=float, default=None,
                      metavar=("START", "END"), help="SUVR window in s (default: 1800 3000)")
    proc.add_argument("--tstar", type=float, metavar="SEC",
                      help="start of the linear phase for graphical methods")
    proc.add_argument("--voxelwise", choices=("none", "T1w", "MNI", "both"), default="T1w",
                      help="spaces of voxelwise parametric maps (MNI: MNI152NLin2009cAsym, "
                      "2 mm, through the SyN transform; needs TemplateFlow files)")

    grp = parser.add_argument_group("group level")
    grp.add_argument("--group-spec", type=Path, metavar="FILE",
                     help="YAML group design (default inferred from participants.tsv)")
    return parser


def _anat_reference(value: str) -> str:
    """``--anat-reference`` value: ``first``, ``unbiased`` or ``ses-<label>``."""
    label = value.removeprefix("ses-")
    if value in ("first", "unbiased") or (value.startswith("ses-") and label.isalnum()):
        return value
    raise argparse.ArgumentTypeError(f"'{value}' is not first, unbiased or ses-<label>")


def _strip(labels: list[str], prefix: str, option: str) -> tuple[str, ...]:
    out = []
    for label in labels:
        value = label[len(prefix):] if label.startswith(prefix) else label
        if not value or not value.replace("-", "").isalnum():
            raise InputError(option, f"'{label}' is not a BIDS label",
                             "use letters and digits only")
        out.append(value)
    return tuple(out)


def _read_mapping(path: Path | None, option: str) -> dict[str, Any]:
    if path is None:
        return {}
    if not path.is_file():
        raise InputError(path, f"{option} file does not exist", "check the path")
    text = path.read_text()
    try:
        if path.suffix in (".yml", ".yaml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as err:
        raise InputError(path, f"{option} is not valid JSON/YAML ({err})") from None
    if not isinstance(data, dict):
        raise InputError(path, f"{option} must hold a mapping", 'e.g. {"pet": {"trc": "K2"}}')
    return data


def parse_args(argv: list[str] | None = None) -> Settings:
    """Parse the command line into :class:`Settings` (argparse exits 2 on bad usage)."""
    args = build_parser().parse_args(argv)
    preset = PRESETS.get(args.preset or "", {})
    output_dir = args.output_dir.absolute()
    return Settings(
        bids_dir=args.bids_dir.absolute(),
        output_dir=output_dir,
        analysis_level=args.analysis_level,
        work_dir=(args.work_dir or output_dir.with_name(output_dir.name + "_work")).absolute(),
        participant_label=_strip(args.participant_label, "sub-", "--participant-label"),
        session_label=_strip(args.session_label, "ses-", "--session-label"),
        tracer_label=_strip(args.tracer_label, "trc-", "--tracer-label"),
        rec_label=_strip(args.rec_label, "rec-", "--rec-label"),
        run_label=_strip(args.run_label, "run-", "--run-label"),
        bids_filters=_read_mapping(args.bids_filter_file, "--bids-filter-file"),
        nprocs=max(1, args.nprocs),
        omp_nthreads=max(1, args.omp_nthreads),
        mem_gb=args.mem_gb,
        plugin=args.plugin,
        plugin_config=_read_mapping(args.plugin_config, "--plugin-config"),
        skip_bids_validation=args.skip_bids_validation,
        preset=args.preset,
        hmc_off=args.hmc_off,
        hmc_start_time=args.hmc_start_time,
        hmc_fwhm=args.hmc_fwhm,
        coreg=args.coreg,
        atlas=tuple(args.atlas),
        atlas_space=args.atlas_space,
        fs_subjects_dir=args.fs_subjects_dir,
        anat_derivatives=args.anat_derivatives.absolute() if args.anat_derivatives else None,
        anat_reference=args.anat_reference,
        tac_method=args.tac_method,
        pvc=tuple(args.pvc),
        pvc_psf=tuple(args.pvc_psf),
        models=tuple(args.models or preset.get("models", ("suvr",))),
        ref_region=args.ref_region or preset.get("ref_region", "wholebrain"),
        suvr_window=tuple(args.suvr_window or preset.get("suvr_window", (1800.0, 3000.0))),
        tstar=args.tstar,
        voxelwise=args.voxelwise,
        group_spec=args.group_spec,
        seed=args.seed,
        progress=not args.no_progress,
    )
