"""The methods boilerplate names exactly the stages and settings that ran."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ketpet_bids.reports import boilerplate as bp

# One phrase that only the given stage's text contains.
MARKERS = {
    "anat": "T1-weighted (T1w)",
    "hmc": "Head motion was corrected",
    "coreg": "co-registered to the T1w",
    "regions": "Regions of interest were defined",
    "pvc": "Partial-volume effects were corrected",
    "tacs": "Regional time-activity curves",
    "blood": "arterial input function",
    "models": "Kinetic parameters were estimated",
    "group": "Benjamini–Hochberg",
}
ALL_STAGES = {
    "anat": {"template": "MNI152NLin2009cAsym"},
    "hmc": {"start_time": 120},
    "coreg": {"method": "ants"},
    "regions": {"atlases": ["sim", "aseg"]},
    "pvc": {"methods": ["gtm", "rbv"], "psf_fwhm_mm": [5.0, 5.0, 6.0]},
    "tacs": {},
    "blood": {"interpolation": "linear"},
    "models": {"models": ["logan", "suvr"], "ref_region": "wholebrain",
               "suvr_window": [3600, 5400], "preset": "k2"},
    "group": {"analyses": ["baseline", "change"]},
}
VERSIONS = {"ketpet_bids": "0.1.0", "nipype": "1.11.0", "antspyx": "0.6.3"}


@pytest.mark.parametrize("chosen", [tuple(ALL_STAGES), ("hmc", "models"), ("coreg",), ()])
def test_mentions_exactly_the_stages_passed(chosen: tuple[str, ...]) -> None:
    text = bp.methods_text({k: ALL_STAGES[k] for k in chosen}, VERSIONS)
    paragraph = text.split("## References")[0]
    for stage, marker in MARKERS.items():
        assert (marker in paragraph) == (stage in chosen), stage


def test_settings_and_versions_appear_in_words() -> None:
    text = bp.methods_text(ALL_STAGES | {"tacs": {"weighting": "fractional"}}, VERSIONS)
    for phrase in ("ketpet_bids 0.1.0", "nipype 1.11.0", "antspyx 0.6.3",
                   "before 120 s", "sim and aseg", "5 × 5 × 6 mm", "between 60 and 90 min",
                   "reference region was wholebrain", "linear interpolation",
                   "baseline and change", "Other tacs settings: weighting = fractional."):
        assert phrase in text, phrase


def test_references_are_those_cited_and_only_those() -> None:
    text = bp.methods_text({k: ALL_STAGES[k] for k in ("hmc", "models")}, VERSIONS)
    keys = bp.cited_keys(text.split("## References")[0])
    assert "Logan1990" in keys and "Power2012" in keys and "Miyazaki2020" in keys
    assert "Patlak1983" not in keys and "Benjamini1995" not in keys  # models/stages not run
    listed = re.findall(r"^- \[(\w+)\]", text, flags=re.M)
    assert listed == keys
    bib = bp.cited_bibtex(text)
    assert re.findall(r"^@\w+\{(\w+),", bib, flags=re.M) == keys


def test_bibliography_holds_the_requested_entries_with_core_fields() -> None:
    bib = bp.load_bibliography()
    assert set(bib) == {"Gorgolewski2011", "Avants2008", "Avants2011", "Tustison2010",
                        "Norgaard2022", "BEP023", "Feng1993", "Logan1990", "Patlak1983",
                        "Lammertsma1996", "Ichise2002", "Ichise2003", "Rousset1998", "Thomas2011",
                        "Thomas2016", "Power2012", "Benjamini1995", "Miyazaki2020",
                        "Avants2011atropos", "Fischl2002", "Schaefer2018", "Bazin2020",
                        "Fonov2011", "Reuter2012"}
    for key, fields in bib.items():
        assert fields.get("title"), key
        if key != "BEP023":  # a draft proposal: no year or journal
            assert re.fullmatch(r"19\d\d|20\d\d", fields["year"]) and fields["year"] in key, key


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown stages"):
        bp.methods_text({"hmc": {}, "motion": {}}, VERSIONS)


def test_write_citation_files(tmp_path: Path) -> None:
    text = bp.methods_text({"coreg": {"method": "identity"}}, VERSIONS)
    md, bib = bp.write_citation(tmp_path, text, bp.cited_bibtex(text))
    assert md == tmp_path / "logs" / "CITATION.md" and bib == tmp_path / "logs" / "CITATION.bib"
    assert "identity transform" in md.read_text() and "@article{Gorgolewski2011," in bib.read_text()
    assert not list((tmp_path / "logs").glob(".*tmp*"))
