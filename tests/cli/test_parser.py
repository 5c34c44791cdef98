"""Command-line contract (DESIGN.md §4): options, defaults, presets, usage errors."""

from __future__ import annotations

import re
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from ketpet_bids import __version__
from ketpet_bids.cli.parser import build_parser, parse_args
from ketpet_bids.cli.run import main
from ketpet_bids.errors import InputError

CONTRACT_OPTIONS = [
    "--participant-label", "--participant_label", "--session-label", "--tracer-label",
    "--rec-label", "--run-label", "--bids-filter-file", "--work-dir", "--nprocs",
    "--omp-nthreads", "--mem-gb", "--plugin", "--plugin-config", "--skip-bids-validation",
    "--preset", "--version", "--hmc-off", "--hmc-start-time", "--coreg", "--atlas",
    "--fs-subjects-dir", "--anat-derivatives", "--pvc", "--pvc-psf", "--models",
    "--ref-region", "--suvr-window", "--tstar", "--voxelwise", "--group-spec",
]


def test_help_documents_every_contract_option():
    text = build_parser().format_help()
    for option in CONTRACT_OPTIONS:
        assert re.search(rf"{re.escape(option)}\b", text), option


def test_version_is_fast_and_exact():
    result = subprocess.run([sys.executable, "-m", "ketpet_bids.cli.run", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"ketpet-bids {__version__}"


def test_labels_lose_prefixes_and_paths_are_absolute(tmp_path):
    s = parse_args([str(tmp_path / "bids"), "out", "participant",
                    "--participant_label", "sub-01", "02", "--session-label", "ses-post"])
    assert s.participant_label == ("01", "02")
    assert s.session_label == ("post",)
    assert s.output_dir.is_absolute()
    assert s.work_dir == s.output_dir.with_name("out_work")


def test_preset_k2_sets_defaults_and_explicit_options_win(tmp_path):
    s = parse_args([str(tmp_path), "out", "participant", "--preset", "k2"])
    assert (s.models, s.ref_region, s.suvr_window) == (("suvr",), "wholebrain", (1800.0, 3000.0))
    s = parse_args([str(tmp_path), "out", "participant", "--preset", "k2",
                    "--suvr-window", "2400", "3600", "--ref-region", "cerebellum"])
    assert s.suvr_window == (2400.0, 3600.0)
    assert s.ref_region == "cerebellum"


def test_path_traversal_label_is_rejected(tmp_path):
    with pytest.raises(InputError, match="participant-label"):
        parse_args([str(tmp_path), "out", "participant", "--participant-label", "../etc"])


def test_bad_filter_file_names_the_file(tmp_path):
    bad = tmp_path / "filters.json"
    bad.write_text("{not json")
    with pytest.raises(InputError) as err:
        parse_args([str(tmp_path), "out", "participant", "--bids-filter-file", str(bad)])
    assert "filters.json" in str(err.value)


@pytest.mark.parametrize("argv", [
    [],                                             # missing positional arguments
    ["bids", "out", "everything"],                  # unknown analysis level
    ["bids", "out", "participant", "--nprocs", "x"],  # not an integer
])
def test_bad_usage_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    code = main([str(tmp_path / "missing"), str(tmp_path / "out"), "participant"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "missing" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("options, named", [
    (["--pvc", "gtm"], "--pvc-psf"),                      # PVC without a PSF
    (["--pvc", "magic", "--pvc-psf", "6"], "--pvc"),      # unknown method
    (["--pvc", "rbv", "--pvc-psf", "6", "6"], "--pvc-psf"),  # two values
    (["--suvr-window", "3000", "1800"], "--suvr-window"),
    (["--plugin", "SLURMGraph"], "--plugin"),             # returns before outputs exist
])
def test_bad_or_unavailable_options_are_refused_not_ignored(tmp_path, capsys, options, named):
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    code = main([str(bids), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 *options])
    err = capsys.readouterr().err
    assert code == 2
    assert named in err and err.count("\n") == 1


@pytest.mark.parametrize("options", [["--voxelwise", "MNI"], ["--atlas", "default"]])
def test_template_products_without_templates_exit_2_naming_the_template(
        tmp_path, capsys, monkeypatch, options):
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "empty_templateflow"))
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    code = main([str(bids), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 *options])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "tpl-MNI152NLin2009cAsym" in err and "prefetch_templates.py" in err


@pytest.mark.parametrize("space, named", [(None, "prefetch_templates.py"),
                                          ("MNI305", "atlas space 'MNI305' is not supported")])
def test_template_space_atlas_is_checked_before_any_work(tmp_path, capsys, monkeypatch, space,
                                                         named):
    """A template-space --atlas file needs the template (exit 2 naming it, offline); an
    unknown --atlas-space is refused naming the file."""
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(tmp_path / "empty_templateflow"))
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    atlas = tmp_path / "space-MNI152NLin2009cAsym_seg-lobes_dseg.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.int16), np.eye(4)), atlas)
    atlas.with_name(atlas.name.replace(".nii.gz", ".tsv")).write_text("index\tname\n1\tA\n")
    code = main([str(bids), str(tmp_path / "out"), "participant", "--skip-bids-validation",
                 "--atlas", str(atlas), *(["--atlas-space", space] if space else [])])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and named in err
    assert not (tmp_path / "out").exists()
