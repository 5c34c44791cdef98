"""Bad-input matrix: each case is the tiny simulated study, copied and broken in one way, run
through the real command line (``ketpet_bids.cli.run.main``, in this process).

Every case must stop before any processing with exit code 2 and exactly one line on stderr
that names the file (or option) at fault and the problem, without a traceback; the BIDS
dataset must be byte-for-byte untouched (sizes and mtimes of every file and folder) and no
participant derivative may exist.

Cases run with ``--skip-bids-validation`` so that the program's own checks are exercised (the
validator would catch some of them first, with its own message; ``test_validator_*`` cover
that path). Unwritable output directories: we run as root, for whom permission bits do not
apply, so the output path is made an existing file (or a path under a file) instead.
"""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from reliability_data import (
    ANAT_DIR,
    PET_DIR,
    SRC,
    copy_study,
    edit_sidecar,
    keep_frames,
    load_pet,
    pet_path,
    read_sidecar,
    run_cli,
    run_subprocess,
    sidecar_path,
    snapshot,
    subject_files,
    write_pet,
)

from ketpet_bids.bids.metadata import check_pet_values
from ketpet_bids.bids.validate import check_fields_of_view, field_of_view_mm
from ketpet_bids.errors import InputError

BLOOD = PET_DIR / f"{SRC}_recording-manual_blood.tsv"


@dataclass(frozen=True)
class Case:
    """One way of breaking the study.

    ``breaks(bids, tmp)`` changes the copy and returns extra command-line arguments; the
    message must contain ``where(bids, tmp)`` and match the regular expression ``problem``.
    """

    breaks: Callable[[Path, Path], list[str]]
    where: Callable[[Path, Path], str]
    problem: str
    output: Callable[[Path, Path], Path] = lambda bids, tmp: tmp / "out"
    work: Callable[[Path, Path], Path] = lambda bids, tmp: tmp / "work"


def _pet(bids: Path, _tmp: Path) -> str:
    return str(pet_path(bids))


def _sidecar(bids: Path, _tmp: Path) -> str:
    return str(sidecar_path(pet_path(bids)))


def _blood(bids: Path, _tmp: Path) -> str:
    return str(bids / BLOOD)


def _option(name: str) -> Callable[[Path, Path], str]:
    return lambda bids, tmp: name


def _set(**fields) -> Callable[[Path, Path], list[str]]:
    def breaks(bids: Path, _tmp: Path) -> list[str]:
        edit_sidecar(pet_path(bids), **fields)
        return []
    return breaks


def _frames(change: Callable[[list, list], tuple[list, list]]) -> Callable:
    """Change ``(FrameTimesStart, FrameDuration)`` of the baseline sidecar."""
    def breaks(bids: Path, _tmp: Path) -> list[str]:
        meta = read_sidecar(pet_path(bids))
        start, duration = change(list(meta["FrameTimesStart"]), list(meta["FrameDuration"]))
        edit_sidecar(pet_path(bids), FrameTimesStart=start, FrameDuration=duration)
        return []
    return breaks


def _voxels(change: Callable[[np.ndarray], None]) -> Callable:
    def breaks(bids: Path, _tmp: Path) -> list[str]:
        data, affine = load_pet(pet_path(bids))
        change(data)
        write_pet(pet_path(bids), data, affine)
        return []
    return breaks


def _bytes(change: Callable[[bytes], bytes], path: Callable[[Path], Path] = pet_path):
    def breaks(bids: Path, _tmp: Path) -> list[str]:
        target = path(bids)
        target.write_bytes(change(target.read_bytes()))
        return []
    return breaks


def _corrupt_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:]


def _uncompressed_truncated(bids: Path, _tmp: Path) -> list[str]:
    pet = pet_path(bids)
    raw = gzip.decompress(pet.read_bytes())
    pet.with_name(pet.name.removesuffix(".gz")).write_bytes(raw[: len(raw) // 3])
    pet.unlink()
    return []


def _unfetched_annex(bids: Path, _tmp: Path) -> list[str]:
    pet = pet_path(bids)
    pet.unlink()
    pet.symlink_to("../../../.git/annex/objects/Xk/q2/MD5E-s3789635--0a1b.nii.gz")
    return []


def _no_pet_at_all(bids: Path, _tmp: Path) -> list[str]:
    for pet in bids.glob("sub-*/ses-*/pet/*_pet.nii.gz"):
        pet.unlink()
    return []


def _pet_geometry(change: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
                  frames: tuple[int, ...] | None = None) -> Callable:
    """Replace the baseline PET's ``(data, affine)``; ``frames`` keeps only those frames (in
    the image and the sidecar) so that an enlarged image stays small."""
    def breaks(bids: Path, _tmp: Path) -> list[str]:
        if frames is not None:
            keep_frames(bids, frames)
        data, affine = load_pet(pet_path(bids))
        write_pet(pet_path(bids), *change(data, affine))
        return []
    return breaks


#: Slices of the tiny PET (4 mm) kept for a partial-head slab: 48 mm, below a quarter of the
#: T1w's largest extent (216 mm → 54 mm).
SLAB_SLICES = slice(16, 28)
#: Slices of 4 mm added below the tiny PET for a whole-body scan: (40 + 190) × 4 = 920 mm,
#: above 4 × 216 = 864 mm.
BODY_SLICES = 190


def _slab(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shift = np.eye(4)
    shift[2, 3] = SLAB_SLICES.start
    return data[:, :, SLAB_SLICES], affine @ shift


def _whole_body(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The head on top of a trunk: the lowest slice repeated downwards (the head stays put)."""
    shift = np.eye(4)
    shift[2, 3] = -BODY_SLICES
    return (np.pad(data, ((0, 0), (0, 0), (BODY_SLICES, 0), (0, 0)), mode="edge"),
            affine @ shift)


def _voxels_in_cm(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxel sizes written in cm (0.4) where mm (4) are meant."""
    return data, np.diag([0.1, 0.1, 0.1, 1.0]) @ affine


def _blood_table(text: Callable[[str], str]) -> Callable:
    def breaks(bids: Path, _tmp: Path) -> list[str]:
        (bids / BLOOD).write_text(text((bids / BLOOD).read_text()))
        return []
    return breaks


def _blood_json(bids: Path) -> Path:
    return (bids / BLOOD).with_suffix(".json")


def _blood_units(bids: Path, _tmp: Path) -> list[str]:
    path = _blood_json(bids)
    path.write_text(path.read_text().replace('"Units": "Bq/mL"', '"Units": "counts/s"', 1))
    return []


def _comma_decimal(text: str) -> str:
    """The plasma value of sample 4 written with a decimal comma."""
    rows = [line.split("\t") for line in text.splitlines()]
    column = rows[0].index("plasma_radioactivity")
    rows[4][column] = "19829,1996"
    return "".join("\t".join(row) + "\n" for row in rows)


def _percent_parent_fraction(text: str) -> str:
    """Parent fractions written as percentages (a common mistake)."""
    rows = [line.split("\t") for line in text.splitlines()]
    column = rows[0].index("metabolite_parent_fraction")
    for row in rows[1:]:
        row[column] = f"{float(row[column]) * 100:g}"
    return "".join("\t".join(row) + "\n" for row in rows)


def _swap_rows(text: str) -> str:
    lines = text.splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    return "\n".join(lines) + "\n"


def _drop_weight(bids: Path, _tmp: Path) -> list[str]:
    table = bids / "participants.tsv"
    rows = [line.split("\t") for line in table.read_text().splitlines()]
    column = rows[0].index("body_weight")
    table.write_text("".join("\t".join(r[:column] + r[column + 1:]) + "\n" for r in rows))
    return ["--models", "suv"]


def _empty_dataset(bids: Path, _tmp: Path) -> list[str]:
    shutil.rmtree(bids)
    bids.mkdir()
    return []


def _output_is_a_file(bids: Path, tmp: Path) -> list[str]:
    (tmp / "out").write_text("not a directory\n")
    return []


CASES: dict[str, Case] = {
    # --- the PET image ----------------------------------------------------------------------
    "pet-missing-everywhere": Case(_no_pet_at_all, lambda b, t: str(b),
                                   r"no PET runs match the selection .*PET images present: "
                                   r"none"),
    "pet-unfetched-annex-link": Case(_unfetched_annex, _pet,
                                     r"PET image is a broken symbolic link .*git-annex"),
    "pet-empty": Case(_bytes(lambda data: b""), _pet, r"PET image is empty \(0 bytes\)"),
    "pet-truncated-gzip": Case(_bytes(lambda data: data[: len(data) // 2]), _pet,
                               r"PET image is (corrupt: its gzip stream cannot be read"
                               r"|truncated)"),
    "pet-corrupt-gzip": Case(_bytes(_corrupt_middle), _pet,
                             r"PET image is corrupt: its gzip stream cannot be read"),
    "pet-truncated-nii": Case(_uncompressed_truncated,
                              lambda b, t: str(pet_path(b)).removesuffix(".gz"),
                              r"PET image is truncated: \d+ bytes of data where the header "
                              r"\(48x56x40x14\) needs \d+"),
    "pet-not-nifti": Case(_bytes(lambda data: gzip.compress(b"<html>not found</html>")), _pet,
                          r"PET image cannot be read as NIfTI"),
    "pet-nan-voxels": Case(_voxels(lambda d: d.__setitem__((20, 20, 20, 5), np.nan)), _pet,
                           r"PET image has 1 NaN/Inf voxel values in 1 frame\(s\), the first in "
                           r"frame 5"),
    "pet-inf-voxels": Case(_voxels(lambda d: d.__setitem__((slice(0, 2), 0, 0, slice(8, 10)),
                                                           np.inf)), _pet,
                           r"PET image has 4 NaN/Inf voxel values in 2 frame\(s\), the first in "
                           r"frame 8"),
    "pet-all-zero-frame": Case(_voxels(lambda d: d.__setitem__((..., 9), 0.0)), _pet,
                               r"frame 9 of the PET image is all zeros although earlier frames "
                               r"have data"),
    "pet-all-zero-image": Case(_voxels(lambda d: d.__setitem__(..., 0.0)), _pet,
                               r"PET image is all zeros"),
    # --- frame timing -----------------------------------------------------------------------
    "frames-fewer-than-image": Case(_frames(lambda s, d: (s[:-1], d[:-1])), _sidecar,
                                    r"FrameDuration and FrameTimesStart have 13 entries but the "
                                    r"image \S+ has 14 frames"),
    "frames-arrays-differ": Case(_frames(lambda s, d: (s, d[:-1])), _sidecar,
                                 r"FrameTimesStart has 14 entries but FrameDuration has 13"),
    "frames-negative-duration": Case(_frames(lambda s, d: (s, d[:3] + [-30.0] + d[4:])),
                                     _sidecar, r"FrameDuration\[3\] = -30 s; durations must be "
                                     r"positive"),
    "frames-zero-duration": Case(_frames(lambda s, d: (s, d[:6] + [0.0] + d[7:])), _sidecar,
                                 r"FrameDuration\[6\] = 0 s"),
    "frames-overlap": Case(_frames(lambda s, d: (s, d[:7] + [400.0] + d[8:])), _sidecar,
                           r"frames overlap: frame 7 ends at 700 s .* after frame 8 starts at "
                           r"600 s"),
    "frames-unsorted": Case(_frames(lambda s, d: (s[:4] + [s[5], s[4]] + s[6:], d)), _sidecar,
                            r"FrameTimesStart is not increasing: frame 5 starts at 120 s, "
                            r"frame 4 at 180 s"),
    "frames-end-times-as-durations": Case(
        _frames(lambda s, d: (s, [a + b for a, b in zip(s, d, strict=True)])), _sidecar,
        r"frames overlap: .*these values look like frame end times"),
    "frames-not-numbers": Case(_set(FrameDuration="30,30,30"), _sidecar,
                               r"FrameDuration must be a non-empty list of numbers"),
    # --- sidecar fields ---------------------------------------------------------------------
    "sidecar-missing": Case(lambda b, t: sidecar_path(pet_path(b)).unlink() or [], _pet,
                            rf"PET sidecar {SRC}_pet.json is missing"),
    "sidecar-invalid-json": Case(_bytes(lambda data: data[:-20],
                                        lambda b: sidecar_path(pet_path(b))), _sidecar,
                                 r"not valid JSON"),
    "units-missing": Case(_set(Units=None), _sidecar, r"required field Units is missing"),
    "units-unknown": Case(_set(Units="counts"), _sidecar,
                          r"Units: unknown activity-concentration unit 'counts'"),
    "units-suv-image": Case(_set(Units="g/mL"), _sidecar,
                            r"Units: unknown activity-concentration unit 'g/mL'"),
    "radionuclide-missing": Case(_set(TracerRadionuclide=None), _sidecar,
                                 r"required field TracerRadionuclide is missing"),
    "radionuclide-unknown": Case(_set(TracerRadionuclide="C12"), _sidecar,
                                 r"unknown radionuclide 'C12'"),
    "decay-corrected-not-boolean": Case(_set(ImageDecayCorrected="yes"), _sidecar,
                                        r"ImageDecayCorrected must be true or false"),
    "decay-correction-time-missing": Case(_set(ImageDecayCorrectionTime=None), _sidecar,
                                          r"required field ImageDecayCorrectionTime is missing"),
    "injected-without-units": Case(_set(InjectedRadioactivityUnits=None), _sidecar,
                                   r"InjectedRadioactivity is given without "
                                   r"InjectedRadioactivityUnits"),
    # --- anatomy ----------------------------------------------------------------------------
    "t1w-missing": Case(lambda b, t: shutil.rmtree(b / ANAT_DIR) or [], _pet,
                        r"no T1w image for sub-01"),
    "t1w-truncated": Case(_bytes(lambda data: data[: len(data) // 2],
                                 lambda b: b / ANAT_DIR / "sub-01_ses-baseline_T1w.nii.gz"),
                          lambda b, t: str(b / ANAT_DIR / "sub-01_ses-baseline_T1w.nii.gz"),
                          r"T1w image is (corrupt|truncated)"),
    "fov-pet-partial-slab": Case(_pet_geometry(_slab), _pet,
                                 r"PET field of view is only 48 mm along voxel axis 3 \(12 "
                                 r"voxels of 4 mm\), less than 0.25 of the 216 mm of the T1w "
                                 r"sub-01_ses-baseline_T1w.nii.gz: a PET covering part of the "
                                 r"head cannot be co-registered \(fix: give a PET that covers "
                                 r"the whole brain"),
    "fov-pet-voxel-sizes-in-cm": Case(_pet_geometry(_voxels_in_cm), _pet,
                                      r"PET field of view is only 16 mm along voxel axis 3 "
                                      r"\(40 voxels of 0.4 mm\).*correct the voxel sizes"),
    "fov-pet-whole-body": Case(_pet_geometry(_whole_body, frames=(12, 13)), _pet,
                               r"PET field of view along the body axis \(voxel axis 3\) is "
                               r"920 mm, more than 4x the 216 mm of the T1w "
                               r"sub-01_ses-baseline_T1w.nii.gz: a whole-body PET.* \(fix: "
                               r"crop the PET to the head"),
    # --- labels -----------------------------------------------------------------------------
    "label-participant-traversal": Case(lambda b, t: ["--participant-label", "../../etc"],
                                        _option("--participant-label"),
                                        r"'\.\./\.\./etc' is not a BIDS label"),
    "label-session-traversal": Case(lambda b, t: ["--session-label", "ses-baseline/../.."],
                                    _option("--session-label"), r"is not a BIDS label"),
    "label-tracer-shell": Case(lambda b, t: ["--tracer-label", "K2;rm -rf ~"],
                               _option("--tracer-label"), r"'K2;rm -rf ~' is not a BIDS label"),
    "label-unknown-participant": Case(lambda b, t: ["--participant-label", "sub-99"],
                                      _option("--participant-label"),
                                      r"participant\(s\) 99 not found in .*; available: 01"),
    # --- output and work directories --------------------------------------------------------
    "output-inside-bids": Case(lambda b, t: [], _option("OUTPUT_DIR"),
                               r"is inside the BIDS dataset .*; nothing may be written there",
                               output=lambda b, t: b / "sub-01" / "out"),
    "output-is-bids": Case(lambda b, t: [], _option("OUTPUT_DIR"),
                           r"is inside the BIDS dataset", output=lambda b, t: b),
    "work-inside-bids": Case(lambda b, t: [], _option("--work-dir"),
                             r"is inside the BIDS dataset", work=lambda b, t: b / "code" / "w"),
    "output-is-a-file": Case(_output_is_a_file, _option("OUTPUT_DIR"),
                             r"out is a file, not a directory"),
    "output-under-a-file": Case(_output_is_a_file, _option("OUTPUT_DIR"),
                                r"out is a file, not a directory",
                                output=lambda b, t: t / "out" / "derivatives"),
    # --- blood ------------------------------------------------------------------------------
    "blood-no-time-column": Case(_blood_table(lambda s: s.replace("time", "t", 1)), _blood,
                                 r"blood table has no 'time' column"),
    "blood-not-a-number": Case(_blood_table(_comma_decimal),
                               _blood, r"column plasma_radioactivity, sample 4: '19829,1996' is "
                               r"not a number"),
    "blood-time-unsorted": Case(_blood_table(_swap_rows), _blood,
                                r"column time is not increasing: sample 4 at 15 s follows "
                                r"sample 3 at 20 s"),
    "blood-parent-fraction-percent": Case(_blood_table(_percent_parent_fraction), _blood,
                                          r"metabolite_parent_fraction of sample 1 is [0-9.]+, "
                                          r"outside \[0, 1\]"),
    "blood-no-samples": Case(_blood_table(lambda s: s.splitlines()[0] + "\n"), _blood,
                             r"blood table has no samples"),
    "blood-sidecar-missing": Case(lambda b, t: _blood_json(b).unlink() or [], _blood,
                                  r"blood sidecar \S+_blood.json is missing"),
    "blood-unknown-units": Case(_blood_units, lambda b, t: str(_blood_json(b)),
                                r"unknown activity-concentration unit 'counts/s'"),
    # --- participants and dataset -----------------------------------------------------------
    "suv-without-body-weight": Case(_drop_weight, lambda b, t: str(b / "participants.tsv"),
                                    r"no body_weight for sub-01; SUV needs it"),
    "dataset-empty": Case(_empty_dataset, lambda b, t: str(b),
                          r"is not a BIDS dataset: dataset_description.json is missing"),
    "dataset-description-broken": Case(
        _bytes(lambda data: data[:10], lambda b: b / "dataset_description.json"),
        lambda b, t: str(b / "dataset_description.json"), r"not valid JSON"),
    "dataset-missing": Case(lambda b, t: shutil.rmtree(b) or [], lambda b, t: str(b),
                            r"BIDS_DIR does not exist"),
}


@pytest.fixture(autouse=True)
def _no_processing(monkeypatch):
    """A case that wrongly passes the checks fails at once instead of processing for minutes."""
    def refuse(*args, **kwargs):
        raise AssertionError("the inputs passed every check: the graph was about to be built")
    monkeypatch.setattr("ketpet_bids.workflows.base.init_ketpet_wf", refuse)


@pytest.fixture
def study(reliability_study) -> Path:
    """The tiny simulated study (made once, see conftest.py); cases copy it."""
    return reliability_study


def _broken_copy(study: Path, tmp: Path, case: Case) -> tuple[Path, list[str], Path, Path]:
    bids = copy_study(study, tmp / "bids")
    extra = case.breaks(bids, tmp)
    return bids, extra, case.output(bids, tmp), case.work(bids, tmp)


def _assert_clean_failure(result, where: str, problem: str) -> None:
    assert result.code == 2, result.stderr + result.stdout[-2000:]
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert lines[0].startswith("ketpet-bids: error: ")
    assert where in lines[0], lines[0]
    assert re.search(problem, lines[0]), lines[0]


def test_matrix_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_stops_cleanly(study, tmp_path, name):
    case = CASES[name]
    bids, extra, output, work = _broken_copy(study, tmp_path, case)
    before = snapshot(bids)
    result = run_cli([bids, output, "participant", "-w", work, "--skip-bids-validation",
                      "--no-progress", *extra])
    _assert_clean_failure(result, case.where(bids, tmp_path), case.problem)
    assert snapshot(bids) == before, "the BIDS dataset was modified"
    if not output.is_relative_to(bids):  # else the snapshot above covers it
        assert subject_files(output) == [], "partial derivatives were written"


@pytest.mark.parametrize("name", ["frames-fewer-than-image", "sidecar-invalid-json",
                                  "blood-no-time-column"])
def test_validator_stops_cleanly(study, tmp_path, name):
    """With validation on (the default) the BIDS validator reports some cases first, on one
    line naming the file."""
    case = CASES[name]
    bids, extra, output, work = _broken_copy(study, tmp_path, case)
    before = snapshot(bids)
    result = run_cli([bids, output, "participant", "-w", work, "--no-progress", *extra])
    where = case.where(bids, tmp_path)
    _assert_clean_failure(result, str(Path(where).parent), r"BIDS validator: ")
    assert snapshot(bids) == before
    assert subject_files(output) == []


def test_real_process_prints_one_line(study, tmp_path):
    """In a fresh process (no pytest capture of warnings or logs) stderr is still one line."""
    case = CASES["frames-overlap"]
    bids, extra, output, work = _broken_copy(study, tmp_path, case)
    result = run_subprocess([bids, output, "participant", "-w", work,
                             "--skip-bids-validation", *extra])
    _assert_clean_failure(result, case.where(bids, tmp_path), case.problem)
    assert result.stdout == ""


def test_leading_empty_frames_are_accepted(tmp_path):
    """Frames of zeros before the tracer arrives are physically possible and pass; the same
    frame after one with data is refused (pet-all-zero-frame above)."""
    data = np.ones((4, 4, 3, 4), dtype=np.float32)
    data[..., :2] = 0.0
    path = tmp_path / "sub-01_trc-K2_pet.nii.gz"
    write_pet(path, data, np.diag([4.0, 4.0, 4.0, 1.0]))
    check_pet_values(path)
    data[..., 3] = 0.0
    write_pet(path, data, np.diag([4.0, 4.0, 4.0, 1.0]))
    with pytest.raises(InputError, match="frame 3 of the PET image is all zeros"):
        check_pet_values(path)


def _geometry(shape: tuple[int, ...], zooms: tuple[float, ...], rotation_deg: float = 0.0,
              origin_mm: float = 0.0) -> tuple[tuple[int, ...], np.ndarray]:
    """``(shape, affine)`` with voxel sizes ``zooms``, turned about the R–L axis by
    ``rotation_deg`` (an oblique, nodding head) and moved by ``origin_mm`` along each axis."""
    angle = np.deg2rad(rotation_deg)
    turn = np.eye(4)
    turn[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    affine = turn @ np.diag([*zooms, 1.0])
    affine[:3, 3] += origin_mm
    return shape, affine


#: T1w images: sagittal MPRAGE (largest extent 256 mm), axial slab (240 mm).
T1W_SAGITTAL = _geometry((176, 256, 256), (1.0, 1.0, 1.0))
T1W_AXIAL = _geometry((256, 256, 160), (0.9375, 0.9375, 1.0))
#: Real brain-PET geometries that must pass (``(shape, zooms)``, mm).
BRAIN_PET = {
    "Biograph mCT, whole-bore reconstruction 814x814x221": ((400, 400, 109, 30),
                                                           (2.036, 2.036, 2.027)),
    "HRRT 312x312x252": ((256, 256, 207, 30), (1.219, 1.219, 1.219)),
    "ECAT EXACT HR+ 264x264x153": ((128, 128, 63), (2.06, 2.06, 2.425)),
    "NeuroEXPLORER-like 495 mm axial": ((330, 330, 330, 30), (1.5, 1.5, 1.5)),
    "cropped to the brain 140x170x120": ((70, 85, 60), (2.0, 2.0, 2.0)),
}


@pytest.mark.parametrize("t1w", [T1W_SAGITTAL, T1W_AXIAL], ids=["sagittal", "axial"])
@pytest.mark.parametrize("name", list(BRAIN_PET))
@pytest.mark.parametrize(("rotation", "origin"), [(0.0, 0.0), (25.0, 1000.0)],
                         ids=["plain", "oblique-far"])
def test_field_of_view_check_accepts_brain_pet(t1w, name, rotation, origin):
    """Brain PET of real scanners passes against head T1w images, also oblique and 1 m away
    (co-registration starts from the centres of mass, so distance is no error)."""
    shape, zooms = BRAIN_PET[name]
    check_fields_of_view(Path("pet.nii.gz"), *_geometry(shape, zooms, rotation, origin),
                         Path("t1w.nii.gz"), *t1w)


@pytest.mark.parametrize("rotation", [0.0, 25.0, -30.0])
def test_field_of_view_thresholds_are_exact(rotation):
    """Extents do not depend on orientation (truth: voxels × voxel size); the limits are a
    quarter and 4 times the T1w's largest extent (256 mm → 64 and 1024 mm), applied on the
    smallest PET extent and on the body axis, which is found for an oblique image too."""
    shape, affine = _geometry((100, 90, 80), (2.0, 3.0, 4.0), rotation, 500.0)
    np.testing.assert_allclose(field_of_view_mm(shape, affine), [200.0, 270.0, 320.0],
                               rtol=1e-12)
    t1w = (Path("t1w.nii.gz"), *T1W_SAGITTAL)
    pet = Path("pet.nii.gz")
    for slices, ok in ((64, True), (63, False)):  # 1 mm slices: 64 mm passes, 63 mm fails
        geometry = _geometry((200, 200, slices), (1.0, 1.0, 1.0), rotation)
        if ok:
            check_fields_of_view(pet, *geometry, *t1w)
        else:
            with pytest.raises(InputError, match=r"only 63 mm along voxel axis 3 .* less than "
                                                 r"0.25 of the 256 mm of the T1w t1w.nii.gz"):
                check_fields_of_view(pet, *geometry, *t1w)
    for slices, ok in ((512, True), (513, False)):  # 2 mm slices: 1024 mm passes, 1026 fails
        geometry = _geometry((300, 300, slices), (2.0, 2.0, 2.0), rotation)
        if ok:
            check_fields_of_view(pet, *geometry, *t1w)
        else:
            with pytest.raises(InputError, match=r"body axis \(voxel axis 3\) is 1026 mm, more "
                                                 r"than 4x the 256 mm"):
                check_fields_of_view(pet, *geometry, *t1w)
    # A whole-body PET stored with the body axis first is found by direction, not position.
    shape, affine = _geometry((260, 300, 300), (4.0, 2.0, 2.0), rotation)
    swap = np.eye(4)[[2, 1, 0, 3]]  # voxel axis 1 ↔ world S–I
    with pytest.raises(InputError, match=r"body axis \(voxel axis 1\) is 1040 mm"):
        check_fields_of_view(pet, shape, swap @ affine, *t1w)
