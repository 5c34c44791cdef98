"""``ketpet-bids`` entry point: checks inputs, builds and runs the graph, reports.

Exit codes: 0 success; 1 a processing step failed (the message names the step, the crash file
and the participant); 2 bad usage or bad input (one line naming the file and the field).
"""

from __future__ import annotations

import getpass
import os
import sys
import time
from pathlib import Path

from ketpet_bids.cli.parser import parse_args
from ketpet_bids.errors import InputError, ProcessingError
from ketpet_bids.settings import Settings


def main(argv: list[str] | None = None) -> int:
    """Run ``ketpet-bids`` with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    os.environ.setdefault("NIPYPE_NO_ET", "1")  # no version check over the network
    os.environ.setdefault("LOGNAME", getpass.getuser())  # nipype's batch plugins need it
    try:
        settings = parse_args(argv)
        # ITK reads this once per process, before its first call: set it before any work so
        # that registrations are reproducible (see ../shared/FACTS.md).
        os.environ["ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"] = str(settings.omp_nthreads)
        os.environ.setdefault("OMP_NUM_THREADS", str(settings.omp_nthreads))
        if settings.analysis_level == "participant":
            from ketpet_bids.cli.participant import run_participant_level

            run_participant_level(settings)
        else:
            run_group_level(settings)
    except InputError as err:
        print(f"ketpet-bids: error: {err.one_line()}", file=sys.stderr)
        return 2
    except ProcessingError as err:
        print(f"ketpet-bids: processing failed: {err}", file=sys.stderr)
        return 1
    return 0


def check_settings(settings: Settings) -> None:
    """Reject options that this version cannot honour, before anything runs."""
    if settings.pvc:
        from ketpet_bids.core.pvc.registry import get_method

        for method in settings.pvc:
            get_method(method)
        if len(settings.pvc_psf) not in (1, 3) or min(settings.pvc_psf, default=0) <= 0:
            raise InputError("--pvc-psf", "PVC needs the scanner PSF: one FWHM or three "
                             "(x y z), in mm, each > 0", "e.g. --pvc-psf 6")
    if settings.plugin.endswith("Graph"):
        raise InputError("--plugin", f"{settings.plugin} returns as soon as the jobs are "
                         "queued, before any output exists; this version waits for results",
                         f"use --plugin {settings.plugin.removesuffix('Graph')}")
    if settings.fs_subjects_dir and not settings.fs_subjects_dir.is_dir():
        raise InputError(settings.fs_subjects_dir, "--fs-subjects-dir is not a directory",
                         "give FreeSurfer's SUBJECTS_DIR")
    from ketpet_bids.bids.anat_derivatives import load_user_atlas
    from ketpet_bids.workflows.anat import NAMED_ATLASES, find_template_inputs

    # every --atlas file is checked here (exit 2 before any work), its space too
    spaces = [load_user_atlas(Path(spec), settings.atlas_space)[3]
              for spec in settings.atlas if spec not in NAMED_ATLASES]
    if (settings.voxelwise in ("MNI", "both") or "default" in settings.atlas
            or any(space != "T1w" for space in spaces)):
        # exit 2 naming the missing template file (offline)
        find_template_inputs(atlases="default" in settings.atlas)
    if settings.anat_reference == "unbiased" and (settings.fs_subjects_dir
                                                  or settings.anat_derivatives):
        given = "--fs-subjects-dir" if settings.fs_subjects_dir else "--anat-derivatives"
        raise InputError("--anat-reference", f"'unbiased' builds a new mid-space T1w, but "
                         f"{given} brings anatomy computed in one session's space",
                         "use --anat-reference first (or a session) with existing anatomy")
    start, end = settings.suvr_window
    if not 0 <= start < end:
        raise InputError("--suvr-window", f"START {start} must be ≥ 0 and below END {end}")
    from ketpet_bids.core.kinetics.registry import get_model

    for model in settings.models:
        get_model(model)


def run_group_level(settings: Settings) -> None:
    """Group statistics from participant-level outputs, and ``group/group.html``."""
    from ketpet_bids.reports.group import build_group_report
    from ketpet_bids.workflows.group import load_group_spec, run_group

    if not settings.output_dir.is_dir():
        raise InputError(settings.output_dir, "no participant-level outputs here",
                         "run the participant level first")
    started = time.monotonic()
    spec = load_group_spec(settings.group_spec, settings.bids_dir, settings.output_dir)
    print("Group design (override with --group-spec):")
    for key, value in spec.items():
        print(f"  {key}: {value}")
    # Voxelwise contrasts run on the template-space maps the participant level wrote (none:
    # regional analyses only), unless --voxelwise none.
    space = None if settings.voxelwise == "none" else "MNI152NLin2009cAsym"
    result = run_group(settings.output_dir, settings.bids_dir, spec=spec, voxelwise_space=space)
    report = build_group_report(settings.output_dir, result.stats_files, notes=result.notes,
                                statmaps=result.statmaps)
    print(f"Group level finished in {time.monotonic() - started:.1f} s: "
          f"{len(result.stats_files)} tables under {settings.output_dir / 'group'}")
    for note in result.notes:
        print(f"  note: {note}")
    print(f"Report: {report}")


if __name__ == "__main__":
    sys.exit(main())
