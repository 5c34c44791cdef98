"""The methods boilerplate names every stage that ran, and only those (issue 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketpet_bids.bids.layout import PetRun
from ketpet_bids.cli.participant import methods_stages
from ketpet_bids.reports.boilerplate import methods_text
from ketpet_bids.settings import Settings


def _run(blood: bool) -> PetRun:
    pet = Path("/data/sub-01/pet/sub-01_trc-K2_pet.nii.gz")
    return PetRun(subject="01", session=None, pet=pet, sidecar=pet.with_suffix("").with_suffix(
        ".json"), t1w=Path("/data/sub-01/anat/sub-01_T1w.nii.gz"),
        blood=(pet.with_name("sub-01_trc-K2_recording-manual_blood.tsv"),) if blood else (),
        entities={"sub": "01", "trc": "K2"})


def _settings(**changes) -> Settings:
    return Settings(bids_dir=Path("/data"), output_dir=Path("/out"),
                    analysis_level="participant", work_dir=Path("/work"), **changes)


@pytest.mark.parametrize("changes, blood, expected", [
    ({}, False, {"anat", "hmc", "coreg", "regions", "tacs", "models"}),
    ({"hmc_off": True}, False, {"anat", "coreg", "regions", "tacs", "models"}),
    ({"pvc": ("gtm",), "pvc_psf": (6.0,)}, False,
     {"anat", "hmc", "coreg", "regions", "pvc", "tacs", "models"}),
    ({"preset": "k2"}, True, {"anat", "hmc", "coreg", "regions", "tacs", "blood", "models"}),
    ({"preset": "k2"}, False, {"anat", "hmc", "coreg", "regions", "tacs", "models"}),
    ({"models": ("srtm",)}, True, {"anat", "hmc", "coreg", "regions", "tacs", "models"}),
])
def test_stages_are_exactly_those_that_ran(changes, blood, expected):
    stages = methods_stages(_settings(**changes), ["sim"], [_run(blood)])
    assert set(stages) == expected


def test_methods_text_states_the_models_and_pvc_that_ran():
    settings = _settings(preset="k2", pvc=("gtm",), pvc_psf=(6.0,))
    text = methods_text(methods_stages(settings, ["sim"], [_run(True)]), {})
    assert "Logan" in text and "SUVR" in text and "geometric transfer matrix" in text
    assert "6 × 6 × 6 mm" in text
    assert "SRTM" not in text and "Patlak" not in text


@pytest.mark.parametrize("blood, expected", [(True, "models: suvr, logan"),
                                             (False, "models: suvr\n")])
def test_summary_lists_the_models_that_ran(capsys, blood, expected):
    """Under --preset k2 a run with blood data also gets Logan; the summary says so."""
    from ketpet_bids.cli.participant import _print_summary

    _print_summary(_settings(preset="k2", models=("suvr",)), [_run(blood)], [], [], 1.0)
    assert expected in capsys.readouterr().out
