"""Two participants processed at the same time into one output directory (job-array use).

Each process has its own work directory, as docs/cluster.rst asks. Motion correction and
co-registration are switched off to keep the two runs short: this test is about the shared
output directory, not about the numbers (test_slurm_plugin.py compares those). Both must finish, each
participant's outputs must be complete and readable, and the shared files must be whole:
``dataset_description.json`` equal to what a single run writes, no temporary files left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from cluster_compare import cli_command, output_files

from ketpet_bids.bids.naming import settings_path
from ketpet_bids.bids.sink import write_dataset_description

RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory) -> dict:
    from ketpet_bids.sim import simulate_study

    root = tmp_path_factory.mktemp("concurrent")
    bids = simulate_study(root / "bids", n_patients=0, n_controls=2, size="tiny", seed=5)
    labels = sorted(pd.read_csv(bids / "participants.tsv", sep="\t")["participant_id"]
                    .str.removeprefix("sub-"))
    env = dict(os.environ, NIPYPE_NO_ET="1", MPLBACKEND="Agg")
    procs = [subprocess.Popen(cli_command(bids, root / "out", root / f"work_{label}",
                                          "--participant-label", label, "--nprocs", "1",
                                          "--hmc-off", "--coreg", "identity"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env)
             for label in labels]
    logs = [proc.communicate(timeout=RUN_TIMEOUT_S)[0] for proc in procs]
    return {"root": root, "bids": bids, "labels": labels, "out": root / "out",
            "codes": [proc.returncode for proc in procs], "logs": logs}


@pytest.mark.e2e
def test_both_participants_finish(concurrent):
    assert concurrent["labels"] == ["01", "02"]
    for code, log in zip(concurrent["codes"], concurrent["logs"], strict=True):
        assert code == 0, log


@pytest.mark.e2e
def test_dataset_description_equals_a_single_runs(concurrent):
    expected = write_dataset_description(concurrent["root"] / "single", concurrent["bids"])
    written = concurrent["out"] / "dataset_description.json"
    assert json.loads(written.read_text()) == json.loads(expected.read_text())


@pytest.mark.e2e
def test_no_temporary_or_partial_files_are_left(concurrent):
    files = output_files(concurrent["out"])
    assert not [f for f in files if Path(f).name.startswith(".")], files


@pytest.mark.e2e
def test_each_participants_outputs_are_complete_and_readable(concurrent):
    out, (a, b) = concurrent["out"], concurrent["labels"]
    files = output_files(out)
    own = {label: sorted(f for f in files if f.startswith(f"sub-{label}")) for label in (a, b)}
    # Same design for both (controls, one session): the same files up to the label.
    assert [f.replace(f"sub-{a}", "sub-X") for f in own[a]] == \
        [f.replace(f"sub-{b}", "sub-X") for f in own[b]]
    for label in (a, b):
        names = " ".join(own[label])
        assert f"sub-{label}.html" in own[label]
        assert "_model-suvr_kinpar.tsv" in names and "_desc-preproc_pet.nii.gz" in names
    for rel in own[a] + own[b]:
        path = out / rel
        if rel.endswith(".json"):
            json.loads(path.read_text())
        elif rel.endswith(".tsv"):
            assert len(pd.read_csv(path, sep="\t")) > 0, rel
        elif rel.endswith(".nii.gz"):
            assert np.isfinite(np.asarray(nib.load(path).dataobj, dtype=float)).all(), rel


@pytest.mark.e2e
def test_each_participant_keeps_its_own_settings_and_shared_logs_are_whole(concurrent):
    """Settings are written per participant (``sub-<s>/log/settings.toml``), so each run of a
    job array keeps its own; the methods text is shared and stays whole."""
    out = concurrent["out"]
    for label in ("01", "02"):
        settings = tomllib.loads((out / settings_path(label)).read_text())["settings"]
        assert settings["participant_label"] == [label]
    logs = out / "logs"
    assert (logs / "CITATION.md").read_text().strip()
    assert (logs / "CITATION.bib").read_text().count("@") >= 1


WRITER = """
import sys
from pathlib import Path
from ketpet_bids.bids.sink import write_dataset_description
for _ in range(int(sys.argv[3])):
    write_dataset_description(Path(sys.argv[1]), Path(sys.argv[2]))
"""


def test_concurrent_rewrites_of_a_shared_file_never_expose_a_partial_file(tmp_path):
    """Two processes rewrite ``dataset_description.json`` 300 times each while this process
    reads it in a loop: every read must parse (atomic rename), and no temporary file remains."""
    bids = tmp_path / "bids"
    bids.mkdir()
    expected = json.loads(write_dataset_description(tmp_path / "out", bids).read_text())
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "out"), str(bids),
                                 "300"]) for _ in range(2)]
    reads = 0
    while any(w.poll() is None for w in writers):
        assert json.loads((tmp_path / "out" / "dataset_description.json").read_text()) == expected
        reads += 1
    assert [w.returncode for w in writers] == [0, 0]
    assert reads > 10  # the reader really overlapped the writers
    assert output_files(tmp_path / "out") == ["dataset_description.json"]
