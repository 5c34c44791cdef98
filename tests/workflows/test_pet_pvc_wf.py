"""The PVC workflow runs with the Linear plugin on a tiny phantom: one TAC per method."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.workflows.pet.pvc import init_pet_pvc_wf

sys.path.insert(0, str(Path(__file__).parents[1] / "core" / "pvc"))
from pvc_files import SCALES, expected_reference, write_inputs  # noqa: E402
from pvc_phantom import TABLE, TRUTH  # noqa: E402

FIELDS = ("methods", "tacs_files", "ref_tacs_files", "pvc_pet_files", "jsons")


def test_pvc_workflow_all_methods(tmp_path):
    """All six methods; GTM and RBV TACs equal the truth (matched geometry, PSF known)."""
    data = write_inputs(tmp_path / "in")
    methods = ("gtm", "rbv", "mg", "iy", "vc", "rl")
    workflow = init_pet_pvc_wf(methods=methods, psf_fwhm_mm=(6.0, 6.0, 6.0),
                               atlas_name="own", iterations=5)
    for key, value in data["files"].items():
        setattr(workflow.inputs.inputnode, key, value)
    parent = pe.Workflow(name="parent", base_dir=str(tmp_path))
    collect = pe.Node(niu.Merge(len(FIELDS), no_flatten=True), name="collect")
    parent.connect([(workflow, collect, [(f"outputnode.{f}", f"in{i + 1}")
                                         for i, f in enumerate(FIELDS)])])
    graph = parent.run(plugin="Linear")
    (node,) = [n for n in graph.nodes() if n.name == "collect"]
    out = dict(zip(FIELDS, node.result.outputs.out, strict=True))
    assert out["methods"] == list(methods)
    assert all(len(out[f]) == len(methods) for f in FIELDS)
    assert out["pvc_pet_files"][0] == data["files"]["pet_file"]
    reference = expected_reference(data["phantom"])
    for label, tacs_file, ref_file, pet_file, json_file in zip(
            *(out[f] for f in FIELDS), strict=True):
        tacs = pd.read_csv(tacs_file, sep="\t")
        assert list(tacs.columns) == ["frame_start", "frame_end", *TABLE.values()]
        assert len(tacs) == len(SCALES)
        sidecar = json.loads(Path(json_file).read_text())
        assert sidecar["Method"] == label
        if label in ("gtm", "rbv"):
            np.testing.assert_allclose(tacs.iloc[:, 2:], np.outer(SCALES, TRUTH[:-1]),
                                       rtol=1e-4)
            np.testing.assert_allclose(pd.read_csv(ref_file, sep="\t")["wholebrain"],
                                       reference, rtol=1e-4)
        if label != "gtm":
            assert nib.load(pet_file).shape == (32, 32, 32, 3)
        if label in ("iy", "rl"):
            assert sidecar["Iterations"]["RunPerFrame"] == [5, 5, 5]
