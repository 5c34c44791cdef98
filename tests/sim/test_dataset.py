"""The written dataset: BIDS validity, sidecars, tables, determinism and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketpet_bids.cli.sim import main
from ketpet_bids.sim import raw_path, truth_path

VALIDATOR = Path(sys.executable).parent / "bids-validator-deno"


def _errors(result: dict) -> list[tuple[str, str]]:
    return [(i["code"], i.get("location", "")) for i in result["issues"]["issues"]
            if i["severity"] == "error"]


def test_bids_validator_reports_no_errors(preset_study):
    """bids-validator-deno (recursive: also derivatives/sim-anat) finds zero errors."""
    run = subprocess.run([str(VALIDATOR), "--format", "json", "-r", str(preset_study)],
                         capture_output=True, text=True, timeout=120)
    result = json.loads(run.stdout)
    assert _errors(result) == []
    for name, sub in result.get("derivativesSummary", {}).items():
        assert _errors(sub) == [], name
    assert run.returncode == 0


def test_sidecars_tables_and_sessions(preset_study):
    participants = pd.read_csv(preset_study / "participants.tsv", sep="\t", keep_default_na=False)
    assert list(participants.columns) == ["participant_id", "group", "arm", "age", "sex",
                                          "body_weight"]
    patients = participants[participants["group"] == "patient"]
    assert sorted(patients["arm"]) == ["ketamine", "placebo"]
    assert set(participants.loc[participants["group"] == "control", "arm"]) == {"n/a"}
    for row in participants.itertuples():
        label = row.participant_id[4:]
        sessions = pd.read_csv(preset_study / raw_path("sessions", label), sep="\t")
        expected = ["ses-baseline", "ses-post"] if row.group == "patient" else ["ses-baseline"]
        assert list(sessions["session_id"]) == expected
        assert (preset_study / raw_path("t1w", label)).exists()
        assert not (preset_study / raw_path("t1w", label, "post")).exists()
        for ses in (s[4:] for s in expected):
            side = json.loads((preset_study / raw_path("pet_json", label, ses)).read_text())
            image = nib.load(preset_study / raw_path("pet", label, ses))
            assert image.get_data_dtype() == np.float32
            assert len(side["FrameTimesStart"]) == len(side["FrameDuration"]) == image.shape[3]
            assert side["FrameTimesStart"][0] == 0
            assert sum(side["FrameDuration"]) == 3600
            assert 370 <= side["InjectedRadioactivity"] <= 555
            assert side["Units"] == "Bq/mL" and side["TracerRadionuclide"] == "C11"
            assert side["ImageDecayCorrected"] is True
            blood = pd.read_csv(preset_study / raw_path("blood", label, ses), sep="\t")
            assert list(blood.columns) == ["time", "plasma_radioactivity",
                                           "whole_blood_radioactivity",
                                           "metabolite_parent_fraction"]
            assert 20 <= len(blood) <= 30 and (blood["time"] <= 60).sum() >= 10
            assert blood["metabolite_parent_fraction"].between(0, 1).all()


def test_truth_suvr_uses_volume_weighted_whole_brain_reference(preset_study):
    """kinpar SUVR = mean TAC over 1800–3000 s / that of the reference; the reference TAC is
    the volume-weighted mean of all atlas regions but csf (rtol 1e-6: 9-digit TSVs)."""
    tacs = pd.read_csv(preset_study / truth_path("tacs", "01", "post"), sep="\t")
    ref = pd.read_csv(preset_study / truth_path("ref_tacs", "01", "post"), sep="\t")
    kinpar = pd.read_csv(preset_study / truth_path("kinpar", "01", "post"), sep="\t")
    brain = kinpar[~kinpar["region"].isin(["csf", "skull", "scalp"])]
    weights = brain["volume_mm3"].to_numpy() / brain["volume_mm3"].sum()
    np.testing.assert_allclose(tacs[brain["region"]].to_numpy() @ weights, ref["wholebrain"],
                               rtol=1e-6)
    window = ((tacs["frame_start"] >= 1800) & (tacs["frame_end"] <= 3000)).to_numpy()
    dur = (tacs["frame_end"] - tacs["frame_start"]).to_numpy()[window]
    late = lambda col: np.sum(col.to_numpy()[window] * dur) / dur.sum()  # noqa: E731
    for row in kinpar.itertuples():
        np.testing.assert_allclose(row.SUVR, late(tacs[row.region]) / late(ref["wholebrain"]),
                                   rtol=1e-6)
        vt = row.K1 / row.k2 * (1 + (row.k3 / row.k4 if row.k4 > 0 else 0))
        np.testing.assert_allclose(row.VT, vt, rtol=1e-6)


def test_cli_same_seed_identical_different_seed_differs(preset_study, preset_args, tmp_path):
    """The CLI writes the dataset and returns 0; with the preset fixture's seed every file is
    byte-identical to it; another seed changes the PET data; a non-empty OUT_DIR exits 2."""
    PRESET = preset_args  # noqa: N806
    args = ["--preset", PRESET["preset"], "--n-patients", str(PRESET["n_patients"]),
            "--n-controls", str(PRESET["n_controls"]), "--seed", str(PRESET["seed"])]
    assert main([str(tmp_path / "same"), *args]) == 0
    files = sorted(p.relative_to(preset_study) for p in preset_study.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "same")
                           for p in (tmp_path / "same").rglob("*") if p.is_file())
    for rel in files:
        assert (preset_study / rel).read_bytes() == (tmp_path / "same" / rel).read_bytes(), rel
    other = ["--preset", PRESET["preset"], "--n-patients", "1", "--n-controls", "0",
             "--seed", str(PRESET["seed"] + 1)]
    assert main([str(tmp_path / "other"), *other]) == 0
    pet = raw_path("pet", "01", "baseline")
    a = nib.load(preset_study / pet).get_fdata()
    b = nib.load(tmp_path / "other" / pet).get_fdata()
    assert np.abs(a - b).max() > 100.0
    assert main([str(tmp_path / "other"), *other]) == 2
    assert main([str(tmp_path / "other"), *other, "--overwrite"]) == 0


def test_module_help_runs():
    run = subprocess.run([sys.executable, "-m", "ketpet_bids.cli.sim", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "--max-motion-mm" in run.stdout


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "x"), "--n-patients", "0", "--n-controls", "0"]) == 2
    assert "need at least one subject" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x"), "--size", "huge"])
