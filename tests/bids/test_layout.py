"""Discovery of PET runs, their T1w and blood files (ketpet_bids.bids.layout)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from bids_testdata import EXAMPLES, write_blood, write_description, write_pet, write_t1w

from ketpet_bids.bids.layout import discover_pet_runs, load_bids_filters, parse_entities
from ketpet_bids.errors import InputError

ALL_8 = sorted(f"sub-{s}_ses-{ses}_trc-K2_run-{r}" for s in ("01", "02")
               for ses in ("baseline", "post") for r in ("1", "2"))


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_two_subjects_two_sessions_two_runs(two_by_two):
    before = _snapshot(two_by_two)
    runs = discover_pet_runs(two_by_two)
    assert [r.source_prefix for r in runs] == ALL_8
    for run in runs:
        assert run.entities["sub"] == run.subject and run.entities["ses"] == run.session
        assert run.pet.name == f"{run.source_prefix}_pet.nii.gz"
        assert run.sidecar == run.pet.with_name(f"{run.source_prefix}_pet.json")
        assert run.t1w.name == f"sub-{run.subject}_ses-{run.session}_T1w.nii.gz"
        assert [b.name for b in run.blood] == [f"{run.source_prefix}_recording-manual_blood.tsv"]
    assert _snapshot(two_by_two) == before, "discovery wrote into the BIDS directory"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"participant_label": ["sub-02"], "session_label": ["post"], "run_label": ["run-2"]},
     ["sub-02_ses-post_trc-K2_run-2"]),
    ({"participant_label": ["01"], "run_label": ["1"]},
     ["sub-01_ses-baseline_trc-K2_run-1", "sub-01_ses-post_trc-K2_run-1"]),
    ({"tracer_label": ["trc-K2"]}, ALL_8),
    ({"bids_filters": {"pet": {"session": "baseline", "run": 1}}},
     ["sub-01_ses-baseline_trc-K2_run-1", "sub-02_ses-baseline_trc-K2_run-1"]),
    ({"bids_filters": {"pet": {"ses": "post", "sub": "02", "run": 2}}},
     ["sub-02_ses-post_trc-K2_run-2"]),
    # The command-line label wins over the filter file for the same entity.
    ({"session_label": ["post"], "participant_label": ["02"],
      "bids_filters": {"pet": {"session": "baseline", "run": 2}}},
     ["sub-02_ses-post_trc-K2_run-2"]),
])
def test_filters(two_by_two, kwargs, expected):
    assert [r.source_prefix for r in discover_pet_runs(two_by_two, **kwargs)] == expected


def test_t1w_pairing_rules(tmp_path):
    root = tmp_path / "ds"
    write_description(root)
    # sub-01: PET in ses-post only has a T1w in ses-baseline → falls back to it.
    write_pet(root / "sub-01/ses-post/pet", "sub-01_ses-post")
    write_t1w(root / "sub-01/ses-baseline/anat", "sub-01_ses-baseline")
    write_t1w(root / "sub-01/ses-zzz/anat", "sub-01_ses-zzz")
    # sub-02: same session has an acq- variant and a plain T1w → the plain one.
    write_pet(root / "sub-02/ses-a/pet", "sub-02_ses-a")
    write_t1w(root / "sub-02/ses-a/anat", "sub-02_ses-a_acq-fast")
    write_t1w(root / "sub-02/ses-a/anat", "sub-02_ses-a")
    write_t1w(root / "sub-02/ses-b/anat", "sub-02_ses-b")
    # sub-03: no sessions at all.
    write_pet(root / "sub-03/pet", "sub-03_trc-FDG_rec-acdyn")
    write_t1w(root / "sub-03/anat", "sub-03")
    t1w = {r.subject: r.t1w.name for r in discover_pet_runs(root)}
    assert t1w == {"01": "sub-01_ses-baseline_T1w.nii.gz", "02": "sub-02_ses-a_T1w.nii.gz",
                   "03": "sub-03_T1w.nii.gz"}
    only_acq = discover_pet_runs(root, participant_label=["02"],
                                 bids_filters={"t1w": {"acquisition": "fast"}})
    assert only_acq[0].t1w.name == "sub-02_ses-a_acq-fast_T1w.nii.gz"


def test_blood_matching(tmp_path):
    root = tmp_path / "ds"
    write_description(root)
    pet_dir = root / "sub-01/pet"
    for run in ("1", "2"):
        write_pet(pet_dir, f"sub-01_trc-K2_rec-acdyn_run-{run}")
    write_t1w(root / "sub-01/anat", "sub-01")
    write_blood(pet_dir, "sub-01_trc-K2_recording-manual")  # no run/rec: applies to both
    write_blood(pet_dir, "sub-01_trc-K2_run-2_recording-autosampler")  # run 2 only
    write_blood(pet_dir, "sub-01_trc-FDG_recording-manual")  # other tracer
    blood = {r.entities["run"]: [b.name for b in r.blood] for r in discover_pet_runs(root)}
    assert blood == {
        "1": ["sub-01_trc-K2_recording-manual_blood.tsv"],
        "2": ["sub-01_trc-K2_recording-manual_blood.tsv",
              "sub-01_trc-K2_run-2_recording-autosampler_blood.tsv"]}


def test_parse_entities_keeps_file_name_order():
    ents, suffix = parse_entities("/x/sub-01_ses-b_task-rest_trc-K2_rec-x_run-02_pet.nii.gz")
    assert list(ents.items()) == [("sub", "01"), ("ses", "b"), ("task", "rest"), ("trc", "K2"),
                                  ("rec", "x"), ("run", "02")]
    assert suffix == "pet"


# --- errors: each names the file/option and the problem -------------------------------------

def _error(root: Path, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        discover_pet_runs(root, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_error_missing_dir(tmp_path):
    assert "does not exist" in _error(tmp_path / "nope")


def test_error_empty_dir(tmp_path):
    message = _error(tmp_path)
    assert str(tmp_path) in message and "dataset_description.json is missing" in message


def test_error_no_subjects(tmp_path):
    write_description(tmp_path)
    message = _error(tmp_path)
    assert "no PET runs" in message and "PET images present: none" in message


def test_error_unknown_participant(two_by_two):
    message = _error(two_by_two, participant_label=["sub-07"])
    assert message.startswith("--participant-label:")
    assert "07 not found" in message and "available: 01, 02" in message


def test_error_no_runs_after_filtering(two_by_two):
    message = _error(two_by_two, session_label=["ses-screening"])
    assert "no PET runs match the selection (session=['screening'])" in message
    assert "sub-01_ses-baseline_trc-K2_run-1_pet.nii.gz" in message


@pytest.mark.parametrize(("option", "label"), [
    ("participant_label", "../01"), ("participant_label", "sub-01/../../etc"),
    ("session_label", "ses-a/b"), ("tracer_label", "K2;rm"), ("run_label", "run-x1"),
    ("participant_label", ""),
])
def test_error_bad_labels(two_by_two, option, label):
    message = _error(two_by_two, **{option: [label]})
    assert message.startswith(f"--{option.replace('_', '-')}:") and repr(label) in message


def test_error_missing_t1w(two_by_two):
    for t1w in two_by_two.glob("sub-02/*/anat/*_T1w.nii.gz"):
        t1w.unlink()
    message = _error(two_by_two)
    assert "sub-02_ses-baseline_trc-K2_run-1_pet.nii.gz" in message
    assert "no T1w image for sub-02" in message
    runs = discover_pet_runs(two_by_two, anat_required=False)
    assert [r.t1w is None for r in runs] == [False] * 4 + [True] * 4


def test_error_missing_sidecar(two_by_two):
    sidecar = two_by_two / "sub-02/ses-post/pet/sub-02_ses-post_trc-K2_run-2_pet.json"
    sidecar.unlink()
    message = _error(two_by_two)
    assert "sub-02_ses-post_trc-K2_run-2_pet.nii.gz" in message
    assert "PET sidecar sub-02_ses-post_trc-K2_run-2_pet.json is missing" in message


def test_error_bad_filters(two_by_two, tmp_path):
    message = _error(two_by_two, bids_filters={"pet": {"colour": "blue"}})
    assert message.startswith("--bids-filter-file:") and "colour" in message
    message = _error(two_by_two, bids_filters={"bold": {"session": "a"}})
    assert "unknown filter 'bold'" in message
    bad = tmp_path / "filters.json"
    bad.write_text('{"pet": {"session": "baseline"')
    with pytest.raises(InputError, match="filters.json: cannot read the BIDS filter file"):
        load_bids_filters(bad)
    bad.write_text(json.dumps({"pet": {"ses": "post"}}))
    assert load_bids_filters(bad) == {"pet": {"session": "post"}}


# --- the public BIDS-PET examples -----------------------------------------------------------

needs_examples = pytest.mark.skipif(
    not EXAMPLES.is_dir(), reason=f"BIDS-PET examples not found at {EXAMPLES} "
    "(see ../shared/data/README.md)")


@needs_examples
@pytest.mark.parametrize(("name", "prefixes", "n_blood"), [
    ("pet001", ["sub-01_ses-01_trc-CIMBI36"], [2]),
    ("pet002", ["sub-01_ses-baseline", "sub-01_ses-rescan", "sub-02_ses-baseline",
                "sub-02_ses-rescan"], [0, 0, 0, 0]),
    ("pet003", ["sub-01_ses-01"], [1]),
    ("pet005", ["sub-01_ses-baseline", "sub-01_ses-intervention_task-eyes"], [0, 0]),
])
def test_examples_discovery(name, prefixes, n_blood):
    runs = discover_pet_runs(EXAMPLES / name)
    assert [r.source_prefix for r in runs] == prefixes
    assert [len(r.blood) for r in runs] == n_blood
    for run in runs:  # every example with anat has it in the PET's own session
        assert run.t1w.parent.parent == run.pet.parent.parent


@needs_examples
@pytest.mark.parametrize("name", ["pet004", "pet006"])
def test_examples_without_t1w(name):
    message = _error(EXAMPLES / name)
    assert "sub-01_pet.nii.gz" in message and "no T1w image for sub-01" in message
    runs = discover_pet_runs(EXAMPLES / name, anat_required=False)
    assert [r.source_prefix for r in runs] == ["sub-01"] and runs[0].t1w is None


@needs_examples
def test_examples_copy_is_not_modified(tmp_path):
    root = shutil.copytree(EXAMPLES / "pet002", tmp_path / "pet002")
    before = _snapshot(root)
    discover_pet_runs(root, participant_label=["02"], session_label=["rescan"])
    assert _snapshot(root) == before
