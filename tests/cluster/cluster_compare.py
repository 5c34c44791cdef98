"""Helpers shared by the cluster tests: run the CLI in a subprocess, compare two output trees.

Not a test module (no ``test_`` prefix); imported by ``test_slurm_plugin.py`` and
``test_concurrent_outputs.py`` from the same folder.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pandas as pd

# Relative tolerance for numbers in TSV and JSON outputs. Every node runs the same code on the
# same inputs with one ITK thread and a fixed registration seed, so the values should agree to
# the last printed digit; 1e-6 leaves room only for the last digit of a 6-significant-digit TSV.
RTOL = 1e-6
# Settings that name the run itself rather than what was computed.
RUN_SPECIFIC_SETTINGS = {"output_dir", "work_dir", "plugin", "plugin_config", "nprocs",
                         "participant_label"}
# Fast options shared by the cluster tests: one session, and head-motion correction estimated
# on the two frames after 2400 s only, so the HMC MapNode still runs (one job per frame).
FAST_OPTIONS = ["--preset", "k2", "--session-label", "baseline", "--hmc-start-time", "2400",
                "--skip-bids-validation", "--no-progress"]


def cli_command(bids: Path, out: Path, work: Path, *options: str) -> list[str]:
    """The ``ketpet-bids`` participant-level command line (run by this test's Python)."""
    return [sys.executable, "-m", "ketpet_bids.cli.run", str(bids), str(out), "participant",
            "-w", str(work), "--anat-derivatives", str(bids / "derivatives" / "sim-anat"),
            *FAST_OPTIONS, *options]


def run_cli(command: list[str], timeout: float, cwd: Path | None = None
            ) -> subprocess.CompletedProcess:
    """Run ``command`` (in ``cwd``) with a bounded wait; fail with its output unless it exits 0."""
    env = dict(os.environ, NIPYPE_NO_ET="1", MPLBACKEND="Agg")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout}\n{done.stderr}"
    return done


def output_files(root: Path) -> list[str]:
    """Every file under ``root``, relative, sorted (temporary files included on purpose)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def assert_same_numbers(a: Any, b: Any, where: str) -> None:
    """Recursively compare parsed JSON/TOML values; floats to :data:`RTOL` relative."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys differ"
        for key in a:
            assert_same_numbers(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_numbers(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=RTOL) or (math.isnan(a) and math.isnan(b)), \
            f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_file(a: Path, b: Path, rel: str) -> None:
    """Compare one output file of two runs by type (see :func:`assert_same_outputs`)."""
    name = a.name
    if name.endswith((".nii", ".nii.gz")):
        ia, ib = nib.load(a), nib.load(b)
        np.testing.assert_array_equal(ia.affine, ib.affine, err_msg=rel)
        # Exact: identical code, inputs, seed and one thread per process.
        np.testing.assert_array_equal(np.asarray(ia.dataobj), np.asarray(ib.dataobj),
                                      err_msg=rel)
    elif name.endswith(".tsv"):
        ta, tb = (pd.read_csv(p, sep="\t", na_values="n/a") for p in (a, b))
        assert list(ta.columns) == list(tb.columns), rel
        numeric = ta.select_dtypes("number").columns
        np.testing.assert_allclose(ta[numeric].to_numpy(float), tb[numeric].to_numpy(float),
                                   rtol=RTOL, atol=0, equal_nan=True, err_msg=rel)
        others = ta.columns.difference(numeric)
        pd.testing.assert_frame_equal(ta[others], tb[others], obj=rel)
    elif name.endswith(".json"):
        assert_same_numbers(json.loads(a.read_text()), json.loads(b.read_text()), rel)
    elif name.endswith(".toml"):
        sa, sb = (tomllib.loads(p.read_text()) for p in (a, b))
        for table in (sa.get("settings", {}), sb.get("settings", {})):
            for key in RUN_SPECIFIC_SETTINGS:
                table.pop(key, None)
        assert_same_numbers(sa, sb, rel)
    elif name.endswith(".html"):
        # The report embeds the settings (directories, plugin); its figures and tables are
        # compared as files of their own.
        assert b.stat().st_size > 0, rel
    else:
        assert a.read_bytes() == b.read_bytes(), f"{rel} differs"


def assert_same_outputs(a: Path, b: Path) -> int:
    """Assert that two derivative trees hold the same files with the same content.

    NIfTI arrays and affines must be equal; TSV and JSON numbers equal to :data:`RTOL`
    relative, text columns exactly; ``logs/settings.toml`` equal except for the settings that
    name the run (:data:`RUN_SPECIFIC_SETTINGS`); HTML reports present; other files (SVG
    figures, transforms, citations) byte-identical. Returns the number of files compared.
    """
    files = output_files(a)
    assert files == output_files(b)
    for rel in files:
        assert_same_file(a / rel, b / rel, rel)
    return len(files)
