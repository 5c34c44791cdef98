"""Helpers of the reliability tests: one tiny simulated study, copied and broken per case,
file-system snapshots, and in-process / subprocess runs of the ``ketpet-bids`` command line.

Imported by name (like ``tests/bids/bids_testdata.py``): not a conftest, so that it cannot
clash with other conftest modules.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np

from ketpet_bids.cli.run import main as ketpet_main

#: Seed of the simulated study every case starts from.
SIM_SEED = 8
SUBJECT, SESSION, TRACER = "01", "baseline", "K2"
SRC = f"sub-{SUBJECT}_ses-{SESSION}_trc-{TRACER}"
PET_DIR = Path(f"sub-{SUBJECT}", f"ses-{SESSION}", "pet")
ANAT_DIR = Path(f"sub-{SUBJECT}", f"ses-{SESSION}", "anat")
ANAT_DERIVATIVES = Path("derivatives", "sim-anat")
#: Frames of the tiny study kept for the full runs (starts 0, 300, 1800, 2400, 3000 s): four
#: frames start after the default HMC start time (120 s) and two cover the SUVR window
#: (1800–3000 s), so every stage runs, at about a third of the cost of all 14 frames.
FULL_RUN_FRAMES = (0, 7, 11, 12, 13)


def simulate_base(out: Path) -> Path:
    """The tiny simulated study every case is copied from (1 patient, 2 sessions)."""
    from ketpet_bids.sim import simulate_study

    return simulate_study(out, n_patients=1, n_controls=0, size="tiny", seed=SIM_SEED)


def pet_path(bids: Path, rec: str | None = None) -> Path:
    """The baseline PET image (or its ``rec-<rec>`` variant)."""
    entity = f"_rec-{rec}" if rec else ""
    return bids / PET_DIR / f"{SRC}{entity}_pet.nii.gz"


def sidecar_path(pet: Path) -> Path:
    """``x_pet.nii.gz`` → ``x_pet.json``."""
    return pet.with_name(pet.name.split(".", 1)[0] + ".json")


def read_sidecar(pet: Path) -> dict:
    return json.loads(sidecar_path(pet).read_text())


def write_sidecar(pet: Path, meta: dict) -> None:
    sidecar_path(pet).write_text(json.dumps(meta, indent=2))


def edit_sidecar(pet: Path, **fields) -> None:
    """Set sidecar fields; a value ``None`` deletes the field."""
    meta = read_sidecar(pet)
    meta.update(fields)
    write_sidecar(pet, {k: v for k, v in meta.items() if v is not None})


def write_pet(pet: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write float32 ``data`` (3D or 4D) with ``affine`` (mm, s units in the header)."""
    img = nb.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.to_filename(pet)


def load_pet(pet: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data float32, affine)`` of a PET image."""
    img = nb.load(pet)
    return np.asarray(img.dataobj, dtype=np.float32), img.affine


def keep_frames(bids: Path, frames: tuple[int, ...] = FULL_RUN_FRAMES) -> None:
    """Keep only ``frames`` of the baseline PET, in the image and in the sidecar."""
    pet = pet_path(bids)
    data, affine = load_pet(pet)
    write_pet(pet, data[..., list(frames)], affine)
    meta = read_sidecar(pet)
    edit_sidecar(pet, FrameTimesStart=[meta["FrameTimesStart"][i] for i in frames],
                 FrameDuration=[meta["FrameDuration"][i] for i in frames])


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry under ``root`` (and ``root`` itself): kind, size and mtime (ns).

    Directories are included because creating *and deleting* a file inside a directory
    still changes the directory's mtime, so transient files are caught as well.
    """
    root = Path(root)
    if not root.exists():
        return {}
    entries = {}
    for path in [root, *root.rglob("*")]:
        stat = path.lstat()
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        entries[str(path.relative_to(root))] = (kind, stat.st_size if kind == "file" else 0,
                                                stat.st_mtime_ns)
    return entries


def subject_files(output_dir: Path) -> list[Path]:
    """Derivative files of any participant under ``output_dir`` (empty if it is absent)."""
    if not output_dir.is_dir():
        return []
    return sorted(p for p in output_dir.rglob("*")
                  if p.is_file() and p.relative_to(output_dir).parts[0].startswith("sub-"))


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(args: list[str]) -> CliResult:
    """``ketpet_bids.cli.run.main(args)`` in this process, with stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = ketpet_main([str(a) for a in args])
    return CliResult(code, out.getvalue(), err.getvalue())


def cli_command(args: list[str]) -> list[str]:
    """The argument list that runs the command line as ``python -m ketpet_bids.cli.run``."""
    return [sys.executable, "-m", "ketpet_bids.cli.run", *[str(a) for a in args]]


def subprocess_env(**extra: str) -> dict[str, str]:
    """This environment plus ``extra``, without network version checks."""
    return {**os.environ, "NIPYPE_NO_ET": "1", "MPLBACKEND": "Agg", **extra}


def run_subprocess(args: list[str], **env: str) -> CliResult:
    """The command line in a fresh Python process (argument list, no shell)."""
    proc = subprocess.run(cli_command(args), capture_output=True, text=True, check=False,
                          env=subprocess_env(**env), timeout=900)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def participant_args(bids: Path, output: Path, work: Path, *extra: str) -> list[str]:
    """Participant level on the baseline session with the simulator's anatomy."""
    return [str(bids), str(output), "participant", "-w", str(work), "--session-label",
            SESSION, "--anat-derivatives", str(bids / ANAT_DERIVATIVES), "--no-progress",
            "--nprocs", "2", *extra]


def copy_study(source: Path, target: Path) -> Path:
    """A full copy of a study (``shutil.copytree``; copies keep no link to the source)."""
    shutil.copytree(source, target, symlinks=True)
    return target


#: Output files that hold paths, times or software versions, not results.
NOT_RESULTS = (".html", ".svg", ".toml", ".md", ".bib")


def result_files(output_dir: Path) -> dict[str, Path]:
    """Relative path → file, for every output that holds results (tables, images, JSON,
    transforms), i.e. everything but reports, figures and logs."""
    return {str(p.relative_to(output_dir)): p for p in sorted(output_dir.rglob("*"))
            if p.is_file() and not p.name.endswith(NOT_RESULTS)}
