"""Sidecar parsing and image checks (ketpet_bids.bids.metadata)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from bids_testdata import EXAMPLES, FRAME_DURATION, FRAME_START, pet_sidecar, write_image

from ketpet_bids.bids.metadata import check_image, read_pet_metadata
from ketpet_bids.errors import InputError


def _sidecar(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "sub-01_pet.json"
    path.write_text(json.dumps(pet_sidecar(**fields)))
    return path


def test_typed_fields(tmp_path):
    image = write_image(tmp_path / "sub-01_pet.nii.gz", (4, 4, 4, 3))
    meta = read_pet_metadata(_sidecar(tmp_path, Units="kBq/cc", InjectedRadioactivity=9.0,
                                      InjectedRadioactivityUnits="mCi", InjectionStart=0),
                             image_path=image)
    assert meta.n_frames == 3
    np.testing.assert_array_equal(meta.frame_start, FRAME_START)
    np.testing.assert_array_equal(meta.frame_end, [60.0, 180.0, 480.0])
    np.testing.assert_array_equal(meta.frame_mid, [30.0, 120.0, 330.0])
    assert meta.to_bq_per_ml == 1000.0
    assert meta.injected_radioactivity_bq == 9.0 * 3.7e7  # 1 mCi = 37 MBq exactly
    assert (meta.radionuclide, meta.half_life, meta.tracer_name) == ("C11", 20.39 * 60, "K2")
    # Decay corrected to the injection: only the unit factor applies.
    np.testing.assert_array_equal(meta.scale_factors(), [1000.0] * 3)
    plain = json.loads(json.dumps(meta.to_dict()))
    assert plain["frame_duration"] == FRAME_DURATION and plain["units"] == "kBq/cc"


def test_not_decay_corrected_without_correction_time(tmp_path):
    meta = read_pet_metadata(_sidecar(tmp_path, ImageDecayCorrected=False,
                                      ImageDecayCorrectionTime=None, TracerRadionuclide="18F"))
    lam = np.log(2) / (109.77 * 60)
    d, t0 = np.asarray(FRAME_DURATION), np.asarray(FRAME_START)
    # λΔ e^{λ t0} / (1 − e^{−λΔ}) written out independently of the implementation.
    expected = lam * d * np.exp(lam * t0) / (1 - np.exp(-lam * d))
    np.testing.assert_allclose(meta.scale_factors(), expected, rtol=1e-12)
    assert np.isnan(meta.decay_correction_time) and meta.to_dict()["decay_correction_time"] is None


def test_correction_time_moved_to_injection(tmp_path):
    # Corrected to the scan start 120 s after injection (InjectionStart = -120 on the
    # TimeZero clock): referencing to the injection multiplies by e^{λ·120}.
    meta = read_pet_metadata(_sidecar(tmp_path, InjectionStart=-120,
                                      ImageDecayCorrectionTime=0))
    np.testing.assert_allclose(meta.scale_factors(), 2 ** (120 / (20.39 * 60)), rtol=1e-12)


def _error(sidecar: Path, image: Path | None = None) -> str:
    with pytest.raises(InputError) as info:
        read_pet_metadata(sidecar, image_path=image)
    message = str(info.value)
    assert message.startswith(str(sidecar if image is None or "image" not in message
                                  else message.split(":")[0])) and "\n" not in message
    return message


@pytest.mark.parametrize("field", ["FrameTimesStart", "FrameDuration", "Units",
                                   "TracerRadionuclide", "ImageDecayCorrected"])
def test_missing_required_field(tmp_path, field):
    sidecar = _sidecar(tmp_path, **{field: None})
    assert f"sub-01_pet.json: required field {field} is missing" in _error(sidecar)


@pytest.mark.parametrize(("fields", "expected"), [
    ({"FrameDuration": [60.0, 120.0]},
     "FrameTimesStart has 3 entries but FrameDuration has 2"),
    ({"FrameDuration": [60.0, -120.0, 300.0]}, "FrameDuration[1] = -120 s"),
    ({"FrameDuration": [60.0, 0.0, 300.0]}, "FrameDuration[1] = 0 s"),
    ({"FrameTimesStart": [0.0, 180.0, 60.0]}, "FrameTimesStart is not increasing"),
    ({"FrameDuration": [90.0, 120.0, 300.0]},
     "frames overlap: frame 0 ends at 90 s (FrameTimesStart + FrameDuration) after frame 1 "
     "starts at 60 s"),
    ({"FrameDuration": "60"}, "FrameDuration must be a non-empty list of numbers"),
    ({"FrameTimesStart": []}, "FrameTimesStart must be a non-empty list of numbers"),
    ({"FrameTimesStart": [0, None, 180]}, "FrameTimesStart must be a non-empty list"),
    ({"Units": "counts"}, "Units: unknown activity-concentration unit 'counts'"),
    ({"Units": "mBq/mL"}, "Units: unknown activity-concentration unit 'mBq/mL'"),
    ({"Units": "g/mL"}, "Units: unknown activity-concentration unit 'g/mL'"),
    ({"TracerRadionuclide": "Tc99m"}, "TracerRadionuclide: unknown radionuclide 'Tc99m'"),
    ({"ImageDecayCorrected": "yes"}, "ImageDecayCorrected must be true or false, not 'yes'"),
    ({"ImageDecayCorrectionTime": None},
     "required field ImageDecayCorrectionTime is missing"),
    ({"ImageDecayCorrectionTime": "0"}, "ImageDecayCorrectionTime must be a number"),
    ({"InjectedRadioactivityUnits": None},
     "InjectedRadioactivity is given without InjectedRadioactivityUnits"),
    ({"InjectedRadioactivityUnits": "MBq/kg"},
     "InjectedRadioactivityUnits: unknown activity unit 'MBq/kg'"),
])
def test_invalid_field(tmp_path, fields, expected):
    message = _error(_sidecar(tmp_path, **fields))
    assert message.startswith(f"{tmp_path / 'sub-01_pet.json'}: ") and expected in message


def test_end_times_given_as_durations_get_a_hint(tmp_path):
    message = _error(_sidecar(tmp_path, FrameDuration=[60.0, 180.0, 480.0]))
    assert "frames overlap" in message and "look like frame end times" in message


def test_missing_and_broken_sidecar(tmp_path):
    assert "PET sidecar not found" in _error(tmp_path / "sub-01_pet.json")
    broken = tmp_path / "sub-02_pet.json"
    broken.write_text('{"Units": "Bq/mL",')
    assert "sub-02_pet.json: not valid JSON" in _error(broken)
    broken.write_text("[1, 2]")
    assert "must hold a JSON object" in _error(broken)


def test_frames_differ_from_image(tmp_path):
    image = write_image(tmp_path / "sub-01_pet.nii.gz", (4, 4, 4, 4))
    message = _error(_sidecar(tmp_path), image)
    assert ("sub-01_pet.json: FrameDuration and FrameTimesStart have 3 entries but the image "
            "sub-01_pet.nii.gz has 4 frames") in message


def test_static_3d_image_is_one_frame(tmp_path):
    image = write_image(tmp_path / "sub-01_pet.nii", (5, 4, 3))
    meta = read_pet_metadata(_sidecar(tmp_path, FrameTimesStart=[3600], FrameDuration=[600]),
                             image_path=image)
    assert meta.n_frames == 1 and check_image(image) == (5, 4, 3)


def _bad_images(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = tmp_path / "good_pet.nii.gz"  # noise: incompressible, so half the file keeps the header
    data = np.random.default_rng(0).random((8, 8, 8, 3), dtype=np.float32)
    nb.Nifti1Image(data, np.eye(4)).to_filename(good)
    raw = good.read_bytes()
    stream = gzip.decompress(raw)
    cases = {
        "empty": (b"", "is empty (0 bytes)"),
        "one_byte": (b"\x00", "cannot be read as NIfTI"),
        "not_gzip": (b"hello world, not an image" * 20, "cannot be read as NIfTI"),
        # Header intact, gzip stream cut in the middle of the data.
        "truncated_gzip": (raw[: len(raw) // 2], "corrupt: its gzip stream cannot be read"),
        # A complete gzip stream holding only part of the voxel data.
        "short_data": (gzip.compress(stream[: len(stream) - 100]), "is truncated"),
    }
    out = {}
    for name, (content, expected) in cases.items():
        path = tmp_path / f"{name}_pet.nii.gz"
        path.write_bytes(content)
        out[name] = (path, expected)
    uncompressed = tmp_path / "short_pet.nii"
    uncompressed.write_bytes(stream[:-4])
    out["short_nii"] = (uncompressed, "is truncated")
    return out


@pytest.mark.parametrize("case", ["empty", "one_byte", "not_gzip", "truncated_gzip",
                                  "short_data", "short_nii"])
def test_corrupt_images(tmp_path, case):
    path, expected = _bad_images(tmp_path)[case]
    with pytest.raises(InputError) as info:
        read_pet_metadata(_sidecar(tmp_path), image_path=path)
    message = str(info.value)
    assert message.startswith(f"{path}: PET image ") and expected in message
    assert "\n" not in message


def test_check_image_missing_and_5d(tmp_path):
    with pytest.raises(InputError, match="nope.nii.gz: T1w image not found"):
        check_image(tmp_path / "nope.nii.gz", what="T1w image")
    five = write_image(tmp_path / "x.nii.gz", (2, 2, 2, 2, 2))
    with pytest.raises(InputError, match="has 5 dimensions"):
        check_image(five)


# --- the public BIDS-PET examples -----------------------------------------------------------

needs_examples = pytest.mark.skipif(
    not EXAMPLES.is_dir(), reason=f"BIDS-PET examples not found at {EXAMPLES} "
    "(see ../shared/data/README.md)")


@needs_examples
@pytest.mark.parametrize(("sidecar", "n_frames", "last_end", "nuclide", "injected_mbq"), [
    ("pet002/sub-01/ses-baseline/pet/sub-01_ses-baseline_pet.json", 32, 3216.0, "C11", 601.648),
    ("pet005/sub-01/ses-intervention/pet/sub-01_ses-intervention_task-eyes_pet.json", 48,
     7260.0, "C11", 624.3),
    ("pet006/sub-01/pet/sub-01_pet.json", 1, 98000.0, "F18", 75.85),
])
def test_examples_sidecars(sidecar, n_frames, last_end, nuclide, injected_mbq):
    meta = read_pet_metadata(EXAMPLES / sidecar)
    assert meta.n_frames == n_frames and meta.frame_end[-1] == last_end
    assert meta.radionuclide == nuclide and meta.to_bq_per_ml == 1.0
    assert meta.injected_radioactivity_bq == pytest.approx(injected_mbq * 1e6, rel=1e-12)


@needs_examples
@pytest.mark.parametrize("sidecar", [
    "pet001/sub-01/ses-01/pet/sub-01_ses-01_trc-CIMBI36_pet.json",
    "pet003/sub-01/ses-01/pet/sub-01_ses-01_pet.json",
    "pet004/sub-01/pet/sub-01_pet.json",
])
def test_examples_with_end_times_as_durations(sidecar):
    """These real sidecars list frame end times under FrameDuration: a clear error."""
    message = _error(EXAMPLES / sidecar)
    assert "frames overlap" in message and "look like frame end times" in message


@needs_examples
def test_examples_placeholder_images():
    folder = EXAMPLES / "pet002/sub-01/ses-baseline/pet"
    with pytest.raises(InputError) as info:
        read_pet_metadata(folder / "sub-01_ses-baseline_pet.json",
                          image_path=folder / "sub-01_ses-baseline_pet.nii.gz")
    assert str(info.value).startswith(f"{folder / 'sub-01_ses-baseline_pet.nii.gz'}: PET image "
                                      "cannot be read as NIfTI (ImageFileError")
    one_byte = EXAMPLES / "pet006/sub-01/pet/sub-01_pet.nii.gz"
    with pytest.raises(InputError, match="PET image cannot be read as NIfTI"):
        check_image(one_byte, what="PET image")
