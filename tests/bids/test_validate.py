"""BIDS validation, output/work directory checks and per-run checks
(ketpet_bids.bids.validate)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from bids_testdata import (
    EXAMPLES,
    pet_sidecar,
    write_blood,
    write_description,
    write_image,
    write_pet,
    write_t1w,
)

from ketpet_bids.bids.layout import discover_pet_runs
from ketpet_bids.bids.validate import (
    check_output_dir,
    check_pet_run,
    find_validator,
    validate_bids,
)
from ketpet_bids.errors import InputError

needs_validator = pytest.mark.skipif(find_validator() is None,
                                     reason="bids-validator-deno is not installed")


@pytest.fixture
def valid_dataset(tmp_path) -> Path:
    """One subject, one session: valid for the BIDS validator (warnings only)."""
    root = tmp_path / "bids"
    write_description(root)
    (root / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\n")
    write_pet(root / "sub-01/ses-a/pet", "sub-01_ses-a_trc-K2")
    write_t1w(root / "sub-01/ses-a/anat", "sub-01_ses-a")
    write_blood(root / "sub-01/ses-a/pet", "sub-01_ses-a_trc-K2_recording-manual")
    return root


@needs_validator
def test_valid_dataset_gives_grouped_warnings(valid_dataset):
    before = sorted(valid_dataset.rglob("*"))
    warnings = validate_bids(valid_dataset)
    assert sorted(valid_dataset.rglob("*")) == before
    codes = [w.split()[3] for w in warnings]
    assert "SIDECAR_KEY_RECOMMENDED" in codes and codes == sorted(set(codes))
    assert all(w.startswith("BIDS validator warning ") and "\n" not in w for w in warnings)


@needs_validator
def test_validator_error_names_file_and_problem(valid_dataset):
    sidecar = valid_dataset / "sub-01/ses-a/pet/sub-01_ses-a_trc-K2_pet.json"
    sidecar.write_text(json.dumps(pet_sidecar(TracerName=None)))
    with pytest.raises(InputError) as info:
        validate_bids(valid_dataset)
    message = str(info.value)
    assert message.startswith(f"{valid_dataset / 'sub-01/ses-a/pet/sub-01_ses-a_trc-K2_pet'}")
    assert "BIDS validator: SIDECAR_KEY_REQUIRED TracerName" in message
    assert "--skip-bids-validation" in message and "\n" not in message


@needs_validator
def test_validator_catches_frame_count_mismatch(valid_dataset):
    write_image(valid_dataset / "sub-01/ses-a/pet/sub-01_ses-a_trc-K2_pet.nii.gz", (4, 4, 4, 5))
    with pytest.raises(InputError, match="sub-01_ses-a_trc-K2_pet.nii.gz: BIDS validator: "):
        validate_bids(valid_dataset)


@needs_validator
@pytest.mark.skipif(not EXAMPLES.is_dir(), reason=f"BIDS-PET examples not found at {EXAMPLES}")
def test_validator_on_placeholder_example():
    with pytest.raises(InputError) as info:
        validate_bids(EXAMPLES / "pet002")
    message = str(info.value)
    assert message.startswith(str(EXAMPLES / "pet002" / "sub-"))
    assert "NIFTI_HEADER_UNREADABLE" in message and "(and 7 more errors)" in message


def test_missing_validator_is_a_warning(valid_dataset, monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/python")
    monkeypatch.setenv("PATH", "")
    warnings = validate_bids(valid_dataset)
    assert len(warnings) == 1 and warnings[0].startswith("BIDS validation skipped: "
                                                         "bids-validator-deno not found")


# --- output and work directories ------------------------------------------------------------

@pytest.mark.parametrize(("output", "work", "ok"), [
    ("out", "work", True),
    ("bids/derivatives/ketpet", "work", True),
    ("bids/derivatives/ketpet/nested", "work", True),
    ("bids2/out", "work", True),  # a sibling whose name starts like the dataset's
    ("bids", "work", False),
    ("bids/sub-01/out", "work", False),
    ("bids/derivatives", "work", False),
    ("out", "bids/work", False),
    ("out", "bids/derivatives/work", False),
    ("bids/../bids/out", "work", False),
])
def test_output_and_work_dir_placement(tmp_path, output, work, ok):
    bids = tmp_path / "bids"
    write_description(bids)
    if ok:
        check_output_dir(bids, tmp_path / output, tmp_path / work)
        return
    option = "OUTPUT_DIR" if output.startswith("bids") else "--work-dir"
    with pytest.raises(InputError) as info:
        check_output_dir(bids, tmp_path / output, tmp_path / work)
    given = tmp_path / (output if option == "OUTPUT_DIR" else work)
    assert str(info.value).startswith(f"{option}: {given} is inside the BIDS dataset")


def test_symlink_into_dataset_is_refused(tmp_path):
    bids = tmp_path / "bids"
    write_description(bids)
    (tmp_path / "link").symlink_to(bids)
    with pytest.raises(InputError, match="OUTPUT_DIR: .* is inside the BIDS dataset"):
        check_output_dir(bids, tmp_path / "link" / "out", tmp_path / "work")


def test_output_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"OUTPUT_DIR: .*file is a file, not a directory"):
        check_output_dir(tmp_path / "bids", tmp_path / "file" / "out", tmp_path / "work")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to any directory")
def test_unwritable_output_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(InputError, match="OUTPUT_DIR: .*locked is not writable"):
        check_output_dir(tmp_path / "bids", locked / "out", tmp_path / "work")


# --- per-run checks -------------------------------------------------------------------------

def test_check_pet_run(valid_dataset):
    run = discover_pet_runs(valid_dataset)[0]
    assert check_pet_run(run).n_frames == 3
    run.t1w.write_bytes(run.t1w.read_bytes()[:50])
    with pytest.raises(InputError, match=r"sub-01_ses-a_T1w.nii.gz: T1w image "):
        check_pet_run(run)
    write_image(run.t1w, (6, 6, 6, 2))
    with pytest.raises(InputError, match="T1w image is 4D"):
        check_pet_run(run)
