"""Participant and group reports built from fake derivatives with contract names."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ketpet_bids.bids import naming
from ketpet_bids.reports import figures
from ketpet_bids.reports.boilerplate import CITATION_MD
from ketpet_bids.reports.group import build_group_report, forest_path
from ketpet_bids.reports.participant import build_participant_report, figure_path

SUBJECT, SRC = "01", "sub-01_ses-baseline_trc-K2"  # as written by conftest.derivatives


class _Links(HTMLParser):
    """Collects every src/href attribute and counts <script> tags."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.links += [v for k, v in attrs if k in ("src", "href") and v]


def _check_page(page: Path) -> list[str]:
    """Assert the page is self-contained; return its local file links."""
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    assert parser.scripts == 0
    assert not [u for u in parser.links if "://" in u or u.startswith("//")]
    files = [u for u in parser.links if not u.startswith("#")]
    for link in files:
        target = page.parent / link
        assert target.is_file() and target.stat().st_size > 0, link
    return files


def test_participant_report_draws_every_stage(derivatives: dict) -> None:
    root = derivatives["root"]
    assert (derivatives["subject"], derivatives["src"]) == (SUBJECT, SRC)
    (root / CITATION_MD).parent.mkdir(parents=True)
    (root / CITATION_MD).write_text("# Methods\n\nHead motion was corrected.")
    page = build_participant_report(root, SUBJECT, [derivatives["run"]],
                                    settings_toml='[hmc]\nstart_time = 120\n',
                                    warnings=["Frame 3 has a gap of 5 s before it."])
    assert page == root / naming.report_path(SUBJECT)
    links = _check_page(page)
    expected = {figure_path(SUBJECT, SRC, kind, *labels).as_posix() for kind, *labels in (
        ("motion",), ("coreg",), ("brainmask",), ("tissues",), ("regions", "sim"),
        ("tacs", "sim"), ("tacs", "sim", "gtm"), ("pvc", "sim"), ("map", "logan", "VT"))}
    assert set(links) == expected
    text = page.read_text()
    # Values read from the files, missing outputs stated plainly, no drawing error.
    assert "MattesMI" in text and "-0.42" in text
    assert "mean 0.24 mm, max 0.4 mm over 6 frames" in text
    assert "Not found: suvr parameters, sim" in text
    assert "Not found: logan parameters, sim, PVC gtm" in text
    # New sections say what they cannot show: no fit table, SUVR fits nothing, no raw PET.
    assert "Not found: logan fit, sim (" in text
    assert "suvr: an average over a time window; nothing is fitted" in text
    assert "Not found: motion-corrected PET" in text
    assert "Frame 3 has a gap of 5 s before it." in text
    assert "start_time = 120" in text and "Head motion was corrected." in text
    assert "Could not draw" not in text
    # SVGs embed rasters as data URIs only, never remote resources.
    for link in links:
        svg = (root / link).read_text()
        assert not re.search(r'href="(?!data:|#)', svg), link


def test_participant_report_states_missing_and_broken_inputs(derivatives: dict) -> None:
    root = derivatives["root"]
    ids = {k: derivatives[k] for k in ("subject", "session", "src")}
    confounds = naming.output_path("confounds", **ids)
    (root / confounds).unlink()
    # A PET reference on another grid cannot be overlaid: reported, not raised.
    petref = root / naming.output_path("petref", space="T1w", **ids)
    import nibabel as nib
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), petref)
    page = build_participant_report(root, SUBJECT, [derivatives["run"]])
    _check_page(page)
    text = page.read_text()
    assert f"Not found: motion parameters ({confounds.as_posix()})." in text
    assert "Could not draw" in text and "share one voxel grid" in text
    assert "No settings were given to the report." in text
    assert not (root / figure_path(SUBJECT, SRC, "motion")).exists()


def test_group_report_has_forest_plot_per_analysis(tmp_path: Path) -> None:
    rows = [{"analysis": "baseline", "measure": "SUVR", "region": r, "contrast": c, "n": 20,
             "estimate": e, "ci_low": e - 0.1, "ci_high": e + 0.1, "statistic": 2.0, "p": 0.01,
             "q_fdr": q, "effect_size": 0.5}
            for c in ("patients-controls", "arm") for r, e, q in
            (("cortex", 0.2, 0.01), ("habenula", -0.3, 0.2))]
    good = tmp_path / naming.group_stats_path("baseline", "SUVR")
    good.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(good, sep="\t", index=False)
    bad = tmp_path / naming.group_stats_path("change", "SUVR")
    pd.DataFrame(rows).drop(columns="q_fdr").to_csv(bad, sep="\t", index=False)
    page = build_group_report(tmp_path, [good, bad], notes=["Voxelwise analysis skipped."])
    assert page == tmp_path / "group" / "group.html"
    links = _check_page(page)
    assert (page.parent / "figures" / forest_path("baseline", "SUVR").name).stat().st_size > 0
    assert "figures/analysis-baseline_meas-SUVR_desc-forest.svg" in links
    text = page.read_text()
    assert "lacks the columns [&#x27;q_fdr&#x27;]" in text
    assert "Voxelwise analysis skipped." in text and "habenula" in text


def test_slice_indices_find_the_centre_of_an_off_centre_blob() -> None:
    volume = np.zeros((30, 20, 10), np.float32)
    volume[4:9, 10:13, 2:5] = 1.0  # centre of mass exactly (6, 11, 3)
    assert figures.slice_indices(volume) == (6, 11, 3)
    assert figures.slice_indices(np.zeros((4, 6, 8))) == (2, 3, 4)


def test_label_boundaries_mark_only_edges() -> None:
    labels = np.zeros((9, 9), int)
    labels[1:8, 1:8] = 1
    labels[3:6, 3:6] = 2
    edges = figures.label_boundaries(labels)
    # label 1 (7×7 minus the 3×3 core): its 24 outer-ring pixels touch 0; of its 16 inner-ring
    # pixels, the 12 non-corner ones touch label 2. Label 2: the 8 non-centre pixels of 3×3.
    assert edges[labels == 1].sum() == 24 + 12
    assert edges[labels == 2].sum() == 8
    assert not edges[labels == 0].any()


def test_frame_mid_times_are_minutes() -> None:
    mid = figures.frame_mid_times_min(np.array([0.0, 60.0, 600.0]),
                                      np.array([60.0, 180.0, 1200.0]))
    np.testing.assert_allclose(mid, [0.5, 2.0, 15.0])


def test_plot_motion_rejects_tables_without_contract_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="framewise_displacement"):
        figures.plot_motion(pd.DataFrame({"trans_x": [0.0]}), tmp_path / "m.svg")
    assert not (tmp_path / "m.svg").exists()


def test_group_report_shows_scatter_auc_line_and_statmaps(tmp_path: Path) -> None:
    """The scatter drawn by the group level is linked under its analysis; the prediction
    forest plot marks AUC 0.5 (not 0) as no effect; statmaps are listed with their design."""
    import json

    rows = [{"analysis": a, "measure": "SUVR", "region": "cortex", "contrast": c, "n": 14,
             "estimate": e, "ci_low": e - 0.1, "ci_high": e + 0.1, "statistic": 2.0, "p": 0.01,
             "q_fdr": 0.02, "effect_size": 0.5}
            for a, c, e in (("symptoms", "pearson", -0.6), ("prediction", "responder:baseline",
                                                            0.8))]
    files = []
    for analysis in ("symptoms", "prediction"):
        path = tmp_path / naming.group_stats_path(analysis, "SUVR")
        path.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([r for r in rows if r["analysis"] == analysis]).to_csv(path, sep="\t",
                                                                            index=False)
        files.append(path)
    points = pd.DataFrame({"region": "cortex", "change": [0.1, 0.2, -0.1, 0.05],
                           "symptom_change": [-10.0, -14, 0, -5],
                           "arm": ["ketamine", "ketamine", "placebo", "placebo"]})
    figures.plot_change_vs_symptoms(points, tmp_path / naming.group_figure_path(
        "symptoms", "SUVR", "scatter"))
    statmap = tmp_path / naming.group_statmap_path("baseline", "VT", "patientMinuscontrol")
    statmap.write_bytes(b"0")
    naming.sidecar_path(statmap).write_text(json.dumps({"Volumes": ["t", "p"], "N": 30,
                                                         "MaskVoxels": 99, "Permutations": 0}))
    page = build_group_report(tmp_path, files, statmaps=[statmap])
    links = _check_page(page)
    assert "figures/analysis-symptoms_meas-SUVR_desc-scatter.svg" in links
    assert statmap.name in " ".join(links)
    text = page.read_text()
    assert "volumes t, p; N = 30, 99 voxels" in text and "Could not draw" not in text
    # The null line is drawn at AUC 0.5, so the axis of the CI [0.7, 0.9] reaches down to a
    # "0.5" tick; the symptoms plot (CI [-0.7, -0.5], null 0) has no such tick.
    assert "<!-- 0.5 -->" in (tmp_path / forest_path("prediction", "SUVR")).read_text()
    assert "<!-- 0.5 -->" not in (tmp_path / forest_path("symptoms", "SUVR")).read_text()
