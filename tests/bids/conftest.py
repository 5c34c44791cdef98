"""Fixtures: tiny generated BIDS-PET datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
from bids_testdata import write_blood, write_description, write_pet, write_t1w


@pytest.fixture
def two_by_two(tmp_path) -> Path:
    """2 subjects × 2 sessions × 2 runs (trc-K2), T1w per session, a manual blood file per
    run, plus distractors that discovery must ignore."""
    root = tmp_path / "bids"
    write_description(root)
    (root / "participants.tsv").write_text("participant_id\tage\nsub-01\t30\nsub-02\t40\n")
    for sub in ("01", "02"):
        for ses in ("baseline", "post"):
            base = root / f"sub-{sub}" / f"ses-{ses}"
            write_t1w(base / "anat", f"sub-{sub}_ses-{ses}")
            for run in ("1", "2"):
                stem = f"sub-{sub}_ses-{ses}_trc-K2_run-{run}"
                write_pet(base / "pet", stem)
                write_blood(base / "pet", f"{stem}_recording-manual")
    pet_dir = root / "sub-01" / "ses-baseline" / "pet"
    # Distractors: a backup copy, a stray sidecar, notes, derivatives and sourcedata PET.
    (pet_dir / "sub-01_ses-baseline_trc-K2_run-1_pet.nii.gz.bak").write_bytes(b"x")
    (pet_dir / "sub-01_ses-baseline_trc-K2_run-3_pet.json").write_text("{}")
    (pet_dir / "notes.txt").write_text("not BIDS")
    write_pet(root / "derivatives" / "old" / "sub-01" / "pet", "sub-01_trc-K2_desc-x")
    write_pet(root / "sourcedata" / "sub-01" / "pet", "sub-01_trc-K2")
    return root
