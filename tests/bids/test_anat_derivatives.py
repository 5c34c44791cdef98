"""Discovery of sMRIPrep-style anatomical derivatives on fake trees."""

from __future__ import annotations

import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ketpet_bids.bids.anat_derivatives import find_anat_derivatives, load_user_atlas
from ketpet_bids.errors import InputError


def _nii(path: Path, data: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.zeros((4, 4, 4), np.uint8) if data is None else data
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def _tree(anat: Path, prefix: str) -> None:
    for name in ("desc-preproc_T1w", "desc-brain_mask", "label-GM_probseg",
                 "label-WM_probseg", "label-CSF_probseg",
                 "space-MNI152NLin2009cAsym_desc-preproc_T1w"):
        _nii(anat / f"{prefix}_{name}.nii.gz")
    labels = np.zeros((4, 4, 4), np.int16)
    labels[1, 1, 1], labels[2, 2, 2] = 1, 2
    _nii(anat / f"{prefix}_seg-aseg_dseg.nii.gz", labels)
    (anat / f"{prefix}_seg-aseg_dseg.tsv").write_text("index\tname\n1\tCortex\n2\tWM\n")


@pytest.mark.parametrize("session", [None, "baseline"])
def test_find_with_and_without_sessions(tmp_path, session):
    anat = tmp_path / "sub-01" / (f"ses-{session}/anat" if session else "anat")
    prefix = f"sub-01_ses-{session}" if session else "sub-01"
    _tree(anat, prefix)
    found = find_anat_derivatives(tmp_path, "sub-01")
    assert found is not None and found.session == session and found.subject == "01"
    assert found.t1w_preproc == anat / f"{prefix}_desc-preproc_T1w.nii.gz"   # not MNI space
    assert found.brain_mask == anat / f"{prefix}_desc-brain_mask.nii.gz"
    assert [p.name.split("_")[-2] for p in found.probseg_list] == [
        "label-GM", "label-WM", "label-CSF"]
    assert found.segs == {"aseg": (anat / f"{prefix}_seg-aseg_dseg.nii.gz",
                                      anat / f"{prefix}_seg-aseg_dseg.tsv")}
    assert find_anat_derivatives(tmp_path, "02") is None


def test_subject_level_preferred_over_sessions(tmp_path, caplog):
    _tree(tmp_path / "sub-01" / "ses-a" / "anat", "sub-01_ses-a")
    _tree(tmp_path / "sub-01" / "ses-b" / "anat", "sub-01_ses-b")
    with caplog.at_level(logging.WARNING):
        found = find_anat_derivatives(tmp_path, "01")
    assert found.session == "a" and "ses-b" in caplog.text
    _nii(tmp_path / "sub-01" / "anat" / "sub-01_desc-brain_mask.nii.gz")
    found = find_anat_derivatives(tmp_path, "01")
    assert found.session is None and found.t1w_preproc is None and found.probseg_list == []


def test_bad_atlases_named(tmp_path, caplog):
    anat = tmp_path / "sub-01" / "anat"
    labels = np.zeros((4, 4, 4), np.int16)
    labels[0, 0, 0], labels[1, 1, 1] = 1, 5
    dseg = _nii(anat / "sub-01_seg-own_dseg.nii.gz", labels)
    with pytest.raises(InputError, match="sub-01_seg-own_dseg.tsv") as err:
        find_anat_derivatives(tmp_path, "01")
    assert "sub-01_seg-own_dseg.nii.gz" in str(err.value)
    tsv = anat / "sub-01_seg-own_dseg.tsv"
    tsv.write_text("label\tname\n1\tA\n")
    with pytest.raises(InputError, match="index"):
        find_anat_derivatives(tmp_path, "01")
    tsv.write_text("index\tname\n1\tA\n")
    with caplog.at_level(logging.WARNING):
        found = find_anat_derivatives(tmp_path, "01")
    assert found.segs["own"] == (dseg, tsv) and "[5]" in caplog.text


def test_load_user_atlas(tmp_path):
    labels = np.zeros((4, 4, 4), np.int16)
    labels[0, 0, 0] = 3
    image = _nii(tmp_path / "my_atlas.nii.gz", labels)
    (tmp_path / "my_atlas.tsv").write_text("index\tname\n3\tHabenula\n")
    assert load_user_atlas(image) == ("myatlas", image, tmp_path / "my_atlas.tsv", "T1w")
    with pytest.raises(InputError, match="does not exist"):
        load_user_atlas(tmp_path / "missing.nii.gz")


def test_user_atlas_space_from_the_option_or_the_space_entity(tmp_path):
    """--atlas-space wins over the file's space- entity; 'MNI' names the template; other
    spaces are refused with the file named."""
    labels = np.ones((4, 4, 4), np.int16)
    image = _nii(tmp_path / "space-MNI152NLin2009cAsym_seg-lobes_dseg.nii.gz", labels)
    (tmp_path / "space-MNI152NLin2009cAsym_seg-lobes_dseg.tsv").write_text("index\tname\n1\tA\n")
    assert load_user_atlas(image)[::3] == ("lobes", "MNI152NLin2009cAsym")
    assert load_user_atlas(image, "T1w")[3] == "T1w"
    assert load_user_atlas(image, "MNI")[3] == "MNI152NLin2009cAsym"
    with pytest.raises(InputError, match="space 'MNI305' is not supported") as error:
        load_user_atlas(image, "MNI305")
    assert image.name in str(error.value)
