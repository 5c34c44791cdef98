"""Checks on the whole input before any processing: BIDS validity, the output and work
directories, and the files of each PET run.

Output inside the BIDS dataset
------------------------------
Nothing is ever written into the raw BIDS dataset, with one conventional exception: the
output directory may be a sub-folder of the dataset's own ``derivatives/`` folder (e.g.
``BIDS_DIR/derivatives/ketpet``), as BIDS-Apps have done since the BIDS-Apps paper. The
specification reserves ``derivatives/`` for derived datasets, the validator and our discovery
skip it, so outputs there never mix with raw data or get re-read as input. ``derivatives/``
itself is refused (the outputs of several pipelines would mix at its top level), and so is
every other place inside the dataset. The work directory (scratch space, not a BIDS dataset)
may never be inside the dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from ketpet_bids.bids.layout import PetRun
from ketpet_bids.bids.metadata import PetMetadata, check_image, read_pet_metadata
from ketpet_bids.errors import InputError

VALIDATOR = "bids-validator-deno"
#: Seconds the validator may take (it needs < 1 s on small datasets).
VALIDATOR_TIMEOUT_S = 600


def find_validator() -> Path | None:
    """The ``bids-validator-deno`` executable next to ``sys.executable``, else on PATH."""
    beside = Path(sys.executable).parent / VALIDATOR
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(VALIDATOR)
    return Path(found) if found else None


def validate_bids(bids_dir: Path) -> list[str]:
    """Run the BIDS validator on ``bids_dir``.

    Parameters
    ----------
    bids_dir
        Root of the BIDS dataset.

    Returns
    -------
    list of str
        Warnings, one line per validator warning code (with its count and first file); a
        single warning saying validation was skipped when the validator is not installed or
        its output cannot be read.

    Raises
    ------
    InputError
        When the validator reports errors: names the first offending file and problem, and
        how many errors there are in all.
    """
    bids_dir = Path(bids_dir)
    if not bids_dir.is_dir():
        raise InputError(bids_dir, "BIDS directory does not exist")
    exe = find_validator()
    if exe is None:
        return [f"BIDS validation skipped: {VALIDATOR} not found next to {sys.executable} or "
                "on PATH (install the bids-validator-deno package)"]
    try:
        proc = subprocess.run([str(exe), "--format", "json", str(bids_dir)],
                              capture_output=True, text=True, timeout=VALIDATOR_TIMEOUT_S,
                              check=False)
        report = json.loads(proc.stdout)
        issues = report["issues"]["issues"]
        messages = report["issues"].get("codeMessages", {})
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError, KeyError,
            TypeError) as exc:
        return [f"BIDS validation skipped: {VALIDATOR} failed ({type(exc).__name__}: "
                f"{str(exc)[:200]})"]
    errors = [i for i in issues if i.get("severity") == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise InputError(bids_dir / _location(first).lstrip("/"),
                         f"BIDS validator: {_describe(first, messages)}{more}",
                         f"fix the dataset (run {VALIDATOR} {bids_dir} for the full report) or "
                         "skip this check with --skip-bids-validation")
    warnings = [i for i in issues if i.get("severity") == "warning"]
    counts = Counter(i.get("code", "?") for i in warnings)
    firsts = {}
    for issue in warnings:
        firsts.setdefault(issue.get("code", "?"), issue)
    return [f"BIDS validator warning {code} ({counts[code]}x, e.g. "
            f"{_location(firsts[code]) or 'dataset'}): {_describe(firsts[code], messages)}"
            for code in sorted(counts)]


def _location(issue: dict) -> str:
    affects = issue.get("affects") or [""]
    return str(issue.get("location") or affects[0])


def _describe(issue: dict, messages: dict) -> str:
    code = issue.get("code", "?")
    sub = f" {issue['subCode']}" if issue.get("subCode") else ""
    text = messages.get(code) or issue.get("issueMessage") or ""
    return " ".join(f"{code}{sub}: {text}".split())


def check_output_dir(bids_dir: Path, output_dir: Path, work_dir: Path) -> None:
    """Refuse output/work directories that would write into the BIDS dataset or cannot be
    written (see the module docstring for the ``derivatives/`` rule).

    Parameters
    ----------
    bids_dir, output_dir, work_dir
        As given on the command line; need not exist yet (except ``bids_dir``).

    Raises
    ------
    InputError
        Naming ``OUTPUT_DIR`` or ``--work-dir``, the path, and the problem.
    """
    bids = Path(bids_dir).resolve()
    derivatives = bids / "derivatives"
    for option, path in (("OUTPUT_DIR", output_dir), ("--work-dir", work_dir)):
        resolved = Path(path).resolve()
        inside = resolved == bids or bids in resolved.parents
        allowed = option == "OUTPUT_DIR" and derivatives in resolved.parents
        if inside and not allowed:
            hint = ("use a folder outside the dataset, or BIDS_DIR/derivatives/<name>"
                    if option == "OUTPUT_DIR" else "use a folder outside the dataset")
            raise InputError(option, f"{path} is inside the BIDS dataset {bids_dir}; nothing "
                             "may be written there", hint)
        _check_writable(option, path, resolved)


def _check_writable(option: str, given: Path, resolved: Path) -> None:
    """The directory, or the nearest existing parent it would be created in, is writable."""
    existing = next(p for p in (resolved, *resolved.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(option, f"{given}: {existing} is a file, not a directory",
                         "choose a directory path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(option, f"{given}: {existing} is not writable",
                         "choose a directory you can write to, or fix its permissions")


def check_pet_run(run: PetRun) -> PetMetadata:
    """Check the files of one run before processing: sidecar fields, PET image (readable,
    complete, frames matching the sidecar) and T1w image (readable, complete, 3D).

    Returns
    -------
    PetMetadata
        The run's typed sidecar.

    Raises
    ------
    InputError
        The first problem found, naming the file and the field.
    """
    meta = read_pet_metadata(run.sidecar, image_path=run.pet)
    if run.t1w is not None:
        shape = check_image(run.t1w, what="T1w image")
        if len(shape) == 4 and shape[3] > 1:
            raise InputError(run.t1w, f"T1w image is 4D ({'x'.join(map(str, shape))}); a 3D "
                             "image is needed", "give a single T1w volume")
    return meta
