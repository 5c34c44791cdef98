"""Participant level: check inputs, build the graph, run it, write reports and a summary."""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ketpet_bids.bids.layout import PetRun, discover_pet_runs
from ketpet_bids.bids.metadata import PetMetadata
from ketpet_bids.bids.naming import settings_path
from ketpet_bids.bids.participants import body_weight_kg
from ketpet_bids.bids.sink import write_dataset_description, write_with
from ketpet_bids.errors import InputError, ProcessingError
from ketpet_bids.settings import Settings

BATCH_PLUGINS = ("SLURM", "SGE", "PBS")
# Models that use the arterial input when a run has blood data (Logan and Patlak otherwise
# fall back to the reference region).
PLASMA_MODELS = ("logan", "ma1", "patlak", "1tcm", "2tcm", "2tcmirr")


@dataclass
class Progress:
    """Counts finished nodes and prints one line per finished stage."""

    total: int
    enabled: bool = True
    done: int = 0
    failed: list[str] = field(default_factory=list)

    def __call__(self, node, status: str) -> None:
        if node.name.startswith("_"):  # a MapNode's sub-node: counted by its parent
            return
        if status == "exception":
            self.failed.append(node.fullname)
        if status != "end":
            return
        self.done += 1
        if self.enabled:
            print(f"[{self.done:>4}/{self.total}] {node.fullname}", flush=True)


def check_runs(settings: Settings) -> tuple[list[PetRun], dict[Path, PetMetadata], list[str]]:
    """Find and validate every PET run before anything is computed (InputError → exit 2)."""
    from ketpet_bids.bids.validate import check_pet_run, validate_bids
    from ketpet_bids.cli.run import check_settings

    check_settings(settings)
    warnings = [] if settings.skip_bids_validation else validate_bids(settings.bids_dir)
    runs = discover_pet_runs(
        settings.bids_dir, participant_label=settings.participant_label,
        session_label=settings.session_label, tracer_label=settings.tracer_label,
        rec_label=settings.rec_label, run_label=settings.run_label,
        bids_filters=settings.bids_filters)
    metadata = {run.pet: check_pet_run(run) for run in runs}
    if "suv" in settings.models:
        _check_suv_inputs(settings, runs, metadata)
    return runs, metadata, list(warnings)


def _check_suv_inputs(settings: Settings, runs: list[PetRun],
                      metadata: dict[Path, PetMetadata]) -> None:
    for run in runs:
        if metadata[run.pet].injected_radioactivity_bq is None:
            raise InputError(run.sidecar, "InjectedRadioactivity is missing; SUV needs it",
                             "add it or drop 'suv' from --models")
        if body_weight_kg(settings.bids_dir, run.subject, run.session) is None:
            raise InputError(settings.bids_dir / "participants.tsv",
                             f"no body_weight for sub-{run.subject}; SUV needs it",
                             "add a body_weight column (kg) or drop 'suv' from --models")


def configure(workflow, settings: Settings) -> None:
    """Execution settings: fast scheduling, crash files in the work dir, quiet logs."""
    from nipype import config, logging

    log_dir = settings.work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    config.update_config({"logging": {"log_directory": str(log_dir), "log_to_file": True,
                                      "workflow_level": "WARNING",
                                      "interface_level": "WARNING"},
                          "execution": {"check_version": False}})
    logging.update_logging(config)
    workflow.config["execution"] = {
        "crashdump_dir": str(settings.work_dir / "crash"),
        "crashfile_format": "txt",
        # Fast polling on one machine; on a batch system every poll queries the scheduler.
        "poll_sleep_duration": 2.0 if settings.plugin in BATCH_PLUGINS else 0.01,
        "stop_on_first_crash": True,
        "remove_unnecessary_outputs": False,
    }


def request_node_resources(workflow) -> None:
    """Ask SLURM for each node's declared CPUs and memory (nipype does not pass them on).

    256 MB are added to ``mem_gb`` for the Python/nipype baseline of a job (~90–140 MB
    measured per job).
    """
    for name in workflow.list_node_names():
        node = workflow.get_node(name)
        memory_mb = math.ceil(node.mem_gb * 1024) + 256
        extra = f" --cpus-per-task={node.n_procs} --mem={memory_mb}M"
        node.plugin_args = {**node.plugin_args,
                            "sbatch_args": node.plugin_args.get("sbatch_args", "") + extra}


def plugin_arguments(settings: Settings, progress: Callable) -> dict:
    """Arguments for the chosen nipype plugin."""
    args = dict(settings.plugin_config)
    args["status_callback"] = progress
    if settings.plugin == "MultiProc":
        args.setdefault("n_procs", settings.nprocs)
        if settings.mem_gb:
            args.setdefault("memory_gb", settings.mem_gb)
    return args


@contextmanager
def scratch_environment(settings: Settings) -> Iterator[None]:
    """Temporary files of this run (ANTs, matplotlib) go inside the work directory.

    ``TMPDIR`` and ``MPLCONFIGDIR`` point into the work dir while the run lasts (workers inherit
    them), so nothing is written outside OUTPUT_DIR and the work dir; both are restored after.
    """
    from ketpet_bids.bids.validate import check_output_dir

    if not settings.bids_dir.is_dir():
        raise InputError(settings.bids_dir, "BIDS_DIR does not exist", "check the path")
    check_output_dir(settings.bids_dir, settings.output_dir, settings.work_dir)
    paths = {"TMPDIR": settings.work_dir / "tmp", "MPLCONFIGDIR": settings.work_dir / "matplotlib"}
    saved = {name: os.environ.get(name) for name in paths}
    for name, path in paths.items():
        path.mkdir(parents=True, exist_ok=True)
        os.environ[name] = str(path)
    tempfile.tempdir = None
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        tempfile.tempdir = None


def run_participant_level(settings: Settings) -> list[Path]:
    """Run the participant level; return the report files written."""
    with scratch_environment(settings):
        return _run_participant_level(settings)


def _run_participant_level(settings: Settings) -> list[Path]:
    started = time.monotonic()
    runs, metadata, warnings = check_runs(settings)
    from ketpet_bids.reports.participant import build_participant_report
    from ketpet_bids.workflows.base import init_ketpet_wf

    print(f"Found {len(runs)} PET run(s) of {len({r.subject for r in runs})} participant(s):")
    for run in runs:
        print(f"  {run.pet.relative_to(settings.bids_dir)}  (T1w: {run.t1w.name})")
    workflow = init_ketpet_wf(settings, runs)
    configure(workflow, settings)
    if settings.plugin == "SLURM":
        request_node_resources(workflow)
    progress = Progress(total=len(workflow.list_node_names()), enabled=settings.progress)
    try:
        workflow.run(plugin=settings.plugin, plugin_args=plugin_arguments(settings, progress))
    except RuntimeError as err:
        raise ProcessingError(_failure_message(settings, progress, err)) from None
    write_dataset_description(settings.output_dir, settings.bids_dir)
    for subject in sorted({r.subject for r in runs}):  # per participant: safe in job arrays
        write_with(settings.output_dir / settings_path(subject),
                   lambda tmp: tmp.write_text(settings.to_toml()))
    write_methods(settings, runs)
    reports = [
        build_participant_report(settings.output_dir, subject,
                                 _report_runs(settings, [r for r in runs if r.subject == subject],
                                              metadata),
                                 settings_toml=settings.to_toml(), warnings=warnings)
        for subject in sorted({r.subject for r in runs})
    ]
    _print_summary(settings, runs, reports, warnings, time.monotonic() - started)
    return reports


def methods_stages(settings: Settings, atlases: list[str], runs: list[PetRun]
                   ) -> dict[str, dict]:
    """The stages that ran and their settings, for the methods boilerplate."""
    from ketpet_bids.workflows.base import run_models

    stages: dict[str, dict] = {
        "anat": _anat_stage(settings, runs),
        "coreg": {"method": settings.coreg},
        "regions": {"atlases": atlases},
        "tacs": {},
        "models": {"models": list(dict.fromkeys(m for run in runs
                                                for m in run_models(settings, run))),
                   "ref_region": settings.ref_region,
                   "voxelwise": settings.voxelwise},
    }
    if not settings.hmc_off:
        stages["hmc"] = {"start_time": settings.hmc_start_time,
                         "reference": "the time-weighted mean of the frames after the start "
                         f"time, smoothed with a {settings.hmc_fwhm:g} mm FWHM Gaussian"}
    if settings.pvc:
        from ketpet_bids.workflows.base import pvc_psf

        stages["pvc"] = {"methods": list(settings.pvc), "psf_fwhm_mm": list(pvc_psf(settings))}
    if any(run.blood and set(run_models(settings, run)) & set(PLASMA_MODELS) for run in runs):
        stages["blood"] = {"interpolation": "linear",
                           "parent fraction": "Hill function fitted to the samples"}
    if {"suv", "suvr"} & set(settings.models):
        stages["models"]["suvr_window"] = settings.suvr_window
    if settings.preset:
        stages["models"]["preset"] = settings.preset
    return stages


def _anat_stage(settings: Settings, runs: list[PetRun]) -> dict:
    """Settings of the anatomy stage as run: derivatives, reference, template."""
    from ketpet_bids.workflows.base import find_subject_anatomy, needs_template

    stage: dict = ({"source": "derivatives", "derivatives": str(settings.anat_derivatives)}
                   if settings.anat_derivatives else {})
    multi = any(len({r.session for r in runs if r.subject == s}) > 1
                for s in {r.subject for r in runs})
    if multi and not settings.anat_derivatives and settings.anat_reference != "first":
        stage["reference"] = settings.anat_reference
    anatomies = [find_subject_anatomy(settings, s) for s in sorted({r.subject for r in runs})]
    if any(needs_template(settings, a) and not (a.derivatives and a.derivatives.template_xfms)
           for a in anatomies):
        stage["template"] = "MNI152NLin2009cAsym"  # registered here (not given)
    return stage


def write_methods(settings: Settings, runs: list[PetRun]) -> None:
    """Write ``logs/CITATION.md`` and ``.bib`` describing exactly what ran."""
    from ketpet_bids.reports.boilerplate import (
        cited_bibtex,
        methods_text,
        software_versions,
        write_citation,
    )

    atlases = sorted({a for item in _report_runs(settings, runs, None) for a in item["atlases"]})
    text = methods_text(methods_stages(settings, atlases, runs), software_versions())
    write_citation(settings.output_dir, text, cited_bibtex(text))


def _report_runs(settings: Settings, runs: list[PetRun],
                 metadata: dict[Path, PetMetadata] | None) -> list[dict]:
    from ketpet_bids.workflows.base import find_subject_anatomy, run_models

    items = []
    for run in runs:
        items.append({
            "src": run.source_prefix, "session": run.session,
            "atlases": find_subject_anatomy(settings, run.subject).atlas_names,
            "models": list(run_models(settings, run)),
            "pvc": list(settings.pvc), "pet": str(run.pet),
            "metadata": _run_metadata(run, metadata[run.pet]) if metadata else {},
        })
    return items


def _run_metadata(run: PetRun, meta: PetMetadata) -> dict:
    return {"tracer": meta.tracer_name, "radionuclide": meta.radionuclide,
            "injected_radioactivity_bq": meta.injected_radioactivity_bq,
            "n_frames": meta.n_frames, "units": meta.units,
            "pet": str(run.pet), "t1w": str(run.t1w)}


def _failure_message(settings: Settings, progress: Progress, err: Exception) -> str:
    crash_dir = settings.work_dir / "crash"
    crashes = sorted(crash_dir.glob("crash-*"), key=lambda p: p.stat().st_mtime)
    step = progress.failed[-1] if progress.failed else "unknown step"
    participant = next((part for part in step.split(".") if part.startswith("sub_")), "")
    where = f" (participant {participant.removeprefix('sub_').removesuffix('_wf')})" if participant else ""
    crash = f"; details in {crashes[-1]}" if crashes else ""
    return f"step {step}{where} failed{crash}"


def _print_summary(settings: Settings, runs: list[PetRun], reports: list[Path],
                   warnings: list[str], seconds: float) -> None:
    from ketpet_bids.workflows.base import run_models

    print(f"\nParticipant level finished in {seconds:.0f} s.")
    models = dict.fromkeys(model for run in runs for model in run_models(settings, run))
    print(f"  runs processed: {len(runs)}; models: {', '.join(models)}")
    print(f"  derivatives: {settings.output_dir}")
    for report in reports:
        print(f"  report: {report}")
    for warning in warnings:
        print(f"  warning: {warning}")
