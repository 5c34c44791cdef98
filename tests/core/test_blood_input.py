"""Blood recordings → metabolite-corrected plasma input, against the simulator's truth.

Samples are the simulator's noise-free blood curves (``ketpet_bids.sim.kinetics``) at its
manual sampling times, written as BIDS ``_blood.tsv`` + JSON. Tolerances: conversions and
decay factors are exact arithmetic (1e-12 relative); the Hill fit to noise-free samples of
the same Hill form recovers its parameters to 1e-4; the on-grid plasma is the linear
interpolant of the samples, whose deviation from the continuous truth is bounded by the
sampling (measured: AUC within 1 %).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ketpet_bids.core.blood import fit_parent_fraction, hill, plasma_input, read_blood
from ketpet_bids.errors import InputError
from ketpet_bids.sim import kinetics as sk
from ketpet_bids.sim.study import BLOOD_SAMPLE_TIMES_S
from ketpet_bids.sim.writer import blood_sidecar

PARAMS = sk.InputParams(scale=1500.0, delay_s=14.0, parent_t50_s=640.0)
HALF_LIFE = 20.39 * 60
EXAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "bids-examples-pet"


def write_recording(folder: Path, label: str, table: pd.DataFrame, sidecar: dict) -> Path:
    """Write ``_recording-<label>_blood.tsv`` and its JSON; returns the TSV path."""
    path = folder / f"sub-01_recording-{label}_blood.tsv"
    table.to_csv(path, sep="\t", index=False, na_rep="n/a")
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def manual_table(times: np.ndarray = BLOOD_SAMPLE_TIMES_S, scale: float = 1.0) -> pd.DataFrame:
    curves = sk.blood_curves(times, PARAMS)
    return pd.DataFrame({"time": times, "plasma_radioactivity": curves["plasma"] * scale,
                         "whole_blood_radioactivity": curves["whole_blood"] * scale,
                         "metabolite_parent_fraction": curves["parent_fraction"]})


def test_plasma_input_matches_truth_and_hill_parameters(tmp_path):
    path = write_recording(tmp_path, "manual", manual_table(), blood_sidecar())
    plasma, settings = plasma_input([path], scan_end_s=3600.0, half_life_s=HALF_LIFE)
    assert settings["ParentFractionModel"] == "hill"
    fitted = settings["ParentFractionParameters"]
    for key, truth in (("t50", PARAMS.parent_t50_s), ("h", PARAMS.parent_hill),
                       ("f_inf", PARAMS.parent_inf)):
        assert fitted[key] == pytest.approx(truth, rel=1e-4)
    truth = sk.blood_curves(plasma.time, PARAMS)
    # At the sample times the grid curve is the samples × the (exactly refitted) fraction.
    at = np.searchsorted(plasma.time, BLOOD_SAMPLE_TIMES_S)
    np.testing.assert_allclose(plasma.parent_plasma[at], truth["parent_plasma"][at], rtol=1e-4)
    np.testing.assert_allclose(plasma.whole_blood[at], truth["whole_blood"][at], rtol=1e-12)
    auc = plasma.parent_plasma.sum() / truth["parent_plasma"].sum()
    assert auc == pytest.approx(1.0, abs=0.01)


def test_units_and_decay_are_converted(tmp_path):
    base = write_recording(tmp_path, "manual", manual_table(), blood_sidecar())
    reference, _ = plasma_input([base], scan_end_s=3600.0, half_life_s=HALF_LIFE)
    # Same data in kBq/mL, and in nCi/mL (1 nCi = 37 Bq).
    for unit, scale in (("kBq/mL", 1e-3), ("nCi/mL", 1 / 37.0)):
        sidecar = blood_sidecar()
        for column in ("plasma_radioactivity", "whole_blood_radioactivity"):
            sidecar[column]["Units"] = unit
        folder = tmp_path / unit.replace("/", "_")
        folder.mkdir()
        path = write_recording(folder, "manual", manual_table(scale=scale), sidecar)
        converted, _ = plasma_input([path], scan_end_s=3600.0, half_life_s=HALF_LIFE)
        np.testing.assert_allclose(converted.parent_plasma, reference.parent_plasma, rtol=1e-9)
    # Not decay corrected: samples carry e^{-λt}; the input must be corrected back.
    table = manual_table()
    decay = np.exp(-np.log(2) / HALF_LIFE * table["time"])
    for column in ("plasma_radioactivity", "whole_blood_radioactivity"):
        table[column] *= decay
    folder = tmp_path / "uncorrected"
    folder.mkdir()
    path = write_recording(folder, "manual", table, blood_sidecar())
    corrected, settings = plasma_input([path], scan_end_s=3600.0, half_life_s=HALF_LIFE,
                                       decay_corrected=False)
    at = np.searchsorted(corrected.time, BLOOD_SAMPLE_TIMES_S)
    np.testing.assert_allclose(corrected.whole_blood[at], reference.whole_blood[at], rtol=1e-9)
    # Corrected to 600 s instead of injection: × e^{λ·600}.
    shifted, _ = plasma_input([base], scan_end_s=3600.0, half_life_s=HALF_LIFE,
                              decay_correction_time=600.0)
    positive = reference.whole_blood > 0
    np.testing.assert_allclose(shifted.whole_blood[positive] / reference.whole_blood[positive],
                               np.exp(np.log(2) / HALF_LIFE * 600.0), rtol=1e-12)


def test_autosampler_whole_blood_merged_with_manual_plasma(tmp_path):
    # Autosampler: whole blood every 2 s for 10 min, no plasma. Manual: sparse samples.
    auto_t = np.arange(0.0, 601.0, 2.0)
    auto = pd.DataFrame({"time": auto_t,
                         "whole_blood_radioactivity": sk.blood_curves(auto_t, PARAMS)[
                             "whole_blood"]})
    sidecar = {"time": {"Units": "s"}, "whole_blood_radioactivity": {"Units": "Bq/mL"}}
    manual_t = np.array([60.0, 180, 300, 600, 900, 1200, 1800, 2400, 3000, 3600])
    files = [write_recording(tmp_path, "autosampler", auto, sidecar),
             write_recording(tmp_path, "manual", manual_table(manual_t), blood_sidecar())]
    plasma, _ = plasma_input(files, scan_end_s=3600.0, half_life_s=HALF_LIFE)
    truth = sk.blood_curves(plasma.time, PARAMS)
    # Before 600 s, plasma = autosampler whole blood × the manual plasma/blood ratio
    # interpolated in time (constant before 60 s) × the parent fraction (Hill refit, exact to
    # 1e-4): checked at the autosampler times, where the grid holds the samples.
    manual = sk.blood_curves(manual_t, PARAMS)
    ratio = np.interp(auto_t, manual_t, manual["plasma"] / manual["whole_blood"])
    at = np.searchsorted(plasma.time, auto_t[1:])
    expected = (sk.blood_curves(auto_t, PARAMS)["whole_blood"] * ratio
                * sk.blood_curves(auto_t, PARAMS)["parent_fraction"])[1:]
    np.testing.assert_allclose(plasma.parent_plasma[at], expected, rtol=1e-4,
                               atol=1e-6 * expected.max())
    # Against the continuous truth the ratio extrapolation costs at most the change of the true
    # plasma/blood ratio between the peak (~30 s) and the first manual sample (60 s): 3.5 %.
    peak = truth["parent_plasma"].max()
    assert plasma.parent_plasma.max() == pytest.approx(peak, rel=0.035)


def _set_units(table, sidecar):
    sidecar["plasma_radioactivity"]["Units"] = "Bq/kg"
    return table


def _drop_units(table, sidecar):
    sidecar.pop("plasma_radioactivity")
    return table


@pytest.mark.parametrize(("edit", "message"), [
    (lambda t, s: t.drop(columns="time"), "column 'time' is missing"),
    (lambda t, s: t.iloc[::-1], "'time' is not sorted"),
    (_set_units, "unknown activity-concentration unit 'Bq/kg'"),
    (lambda t, s: t.assign(metabolite_parent_fraction=1.5), "outside [0, 1]"),
    (_drop_units, "no Units for column 'plasma_radioactivity'"),
])
def test_bad_blood_files_raise_input_errors(tmp_path, edit, message):
    sidecar = blood_sidecar()
    table = edit(manual_table(), sidecar)
    path = write_recording(tmp_path, "manual", table, sidecar)
    with pytest.raises(InputError) as err:
        read_blood(path)
    assert message in str(err.value)
    assert "fix:" in str(err.value) and "_blood." in str(err.value)


def test_parent_fraction_interpolation_and_too_few_samples():
    t = np.array([300.0, 900.0, 1800.0])
    f = np.array([0.6, 0.3, 0.2])
    curve = fit_parent_fraction(t, f, "hill")  # 3 samples: interpolation is used instead
    assert curve.method == "interp"
    np.testing.assert_allclose(curve(np.array([0.0, 150.0, 600.0, 3600.0])),
                               [1.0, 0.8, 0.45, 0.2], rtol=1e-12)
    np.testing.assert_allclose(hill(np.array([0.0, 640.0]), 640.0, 2.0, 0.1), [1.0, 0.55])


@pytest.mark.skipif(not EXAMPLES.is_dir(), reason="shared/data/bids-examples-pet is absent")
def test_real_bids_examples():
    folder = EXAMPLES / "pet001" / "sub-01" / "ses-01" / "pet"
    files = sorted(folder.glob("*_blood.tsv"))
    assert len(files) == 2  # autosampler (whole blood, kBq/mL) + manual (HPLC)
    plasma, settings = plasma_input(files, scan_end_s=7200.0, half_life_s=HALF_LIFE)
    manual = read_blood(folder / "sub-01_ses-01_trc-CIMBI36_recording-manual_blood.tsv")
    # After the autosampler ends (900 s) the grid plasma / fitted fraction equals the manual
    # plasma samples converted from kBq/mL (exact arithmetic).
    late = manual.time > 900
    at = np.searchsorted(plasma.time, manual.time[late])
    fraction = fit_parent_fraction(manual.time, manual.parent_fraction)
    np.testing.assert_allclose(plasma.parent_plasma[at] / fraction(manual.time[late]),
                               manual.plasma[late], rtol=1e-9)
    assert manual.plasma[1] == pytest.approx(43310.0)  # 43.31 kBq/mL → Bq/mL
    residual = fraction(manual.time) - manual.parent_fraction
    assert settings["ParentFractionModel"] == "hill" and np.sqrt(np.mean(residual**2)) < 0.03
    pet003 = sorted((EXAMPLES / "pet003" / "sub-01" / "ses-01" / "pet").glob("*_blood.tsv"))
    plasma3, settings3 = plasma_input(pet003, scan_end_s=5400.0, half_life_s=109.77 * 60)
    assert settings3["WholeBlood"] is False and plasma3.whole_blood is None
    assert np.all(plasma3.parent_plasma >= 0) and plasma3.parent_plasma.max() > 0
