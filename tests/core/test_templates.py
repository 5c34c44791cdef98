"""TemplateFlow access offline: a generated TemplateFlow-layout directory, no downloads."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ketpet_bids.core.templates import DEFAULT_TEMPLATE, PREFETCH_COMMAND, template_file
from ketpet_bids.errors import InputError

TPL = DEFAULT_TEMPLATE


@pytest.fixture
def tf_home(tmp_path, templateflow_offline) -> tuple[Path, list]:
    """A tiny TemplateFlow tree (synthetic 8³ images) and a network that fails the test.

    ``res-01_T1w`` is a zero-byte placeholder, as in TemplateFlow's skeleton, so it needs a
    download; every other file is present. Returns the tree and the list of network calls.
    """
    home = tmp_path / "templateflow"
    folder = home / f"tpl-{TPL}"
    folder.mkdir(parents=True)
    (home / "dataset_description.json").write_text(json.dumps(
        {"Name": "TemplateFlow", "BIDSVersion": "1.1.0"}))
    (folder / "template_description.json").write_text(json.dumps({"Name": TPL}))
    image = nib.Nifti1Image(np.arange(512, dtype=np.float32).reshape(8, 8, 8),
                            np.diag([2.0, 2.0, 2.0, 1.0]))
    for stem in ("res-02_T1w", "res-02_desc-brain_mask", "res-01_label-GM_probseg"):
        nib.save(image, folder / f"tpl-{TPL}_{stem}.nii.gz")
    (folder / f"tpl-{TPL}_res-01_T1w.nii.gz").touch()
    calls = templateflow_offline(home)
    return home, calls


def test_present_files_are_used_without_network(tf_home):
    tf_home, calls = tf_home
    path = template_file(resolution=2, suffix="T1w", desc=None)
    assert path == tf_home / f"tpl-{TPL}" / f"tpl-{TPL}_res-02_T1w.nii.gz"
    assert np.asarray(nib.load(path).dataobj)[1, 2, 3] == 64 + 16 + 3  # our content
    assert template_file(resolution=1, suffix="probseg", label="GM").name.endswith(
        "label-GM_probseg.nii.gz")
    assert calls == []                       # nothing was requested from the network


def test_offline_missing_file_names_it_and_the_prefetch_command(tf_home):
    tf_home, calls = tf_home
    placeholder = tf_home / f"tpl-{TPL}" / f"tpl-{TPL}_res-01_T1w.nii.gz"
    with pytest.raises(InputError) as err:
        template_file(resolution=1, suffix="T1w", desc=None)
    message = str(err.value)
    assert str(placeholder) in message and PREFETCH_COMMAND in message
    assert "ConnectionError" in message and len(calls) == 1   # one attempt, failed
    with pytest.raises(InputError, match="0 files match resolution=1, suffix=mask"):
        template_file(resolution=1, suffix="mask", desc="brain")
    with pytest.raises(InputError, match="tpl-MNI152NLin2009cAsym"):
        template_file(home=tf_home / "nowhere", resolution=2, suffix="T1w", desc=None)
