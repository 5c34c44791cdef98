"""Longitudinal consistency: a subject's PET sessions share one anatomy (issue 4).

The subject workflow of ``workflows/base.py`` is built (not run) for one subject with a
baseline and a post session, each with its own T1w. In the flattened, executable graph
(identity nodes removed, as nipype runs it) every TAC and reference-mask node of both PET
runs must take its label image from the same anatomical node and list position, and the
anatomy must be computed once, from the first session's T1w (``--anat-reference first``).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.pipeline.engine.utils import _remove_nonjoin_identity_nodes

from ketpet_bids.bids.layout import PetRun
from ketpet_bids.settings import Settings
from ketpet_bids.workflows.base import init_single_subject_wf


def _runs(root: Path) -> list[PetRun]:
    runs = []
    for session in ("post", "baseline"):                 # discovery order must not matter
        folder = root / "sub-01" / f"ses-{session}"
        stem = f"sub-01_ses-{session}"
        pet = folder / "pet" / f"{stem}_trc-K2_pet.nii.gz"
        t1w = folder / "anat" / f"{stem}_T1w.nii.gz"
        for path, shape in ((pet, (4, 4, 4, 2)), (t1w, (6, 6, 6))):
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), path)
        sidecar = pet.with_name(f"{stem}_trc-K2_pet.json")
        sidecar.write_text("{}")
        runs.append(PetRun(subject="01", session=session, pet=pet, sidecar=sidecar, t1w=t1w,
                           blood=(), entities={"sub": "01", "ses": session, "trc": "K2"}))
    return runs


def _sources(graph, node, field: str) -> list[tuple[str, str]]:
    """(source node, source connection) feeding ``field`` of ``node``."""
    return [(src.fullname, str(conn[0])) for src, _, data in graph.in_edges(node, data=True)
            for conn in data["connect"] if conn[1] == field]


def test_two_sessions_share_regions(tmp_path):
    runs = _runs(tmp_path / "bids")
    settings = Settings(bids_dir=tmp_path / "bids", output_dir=tmp_path / "out",
                        analysis_level="participant", work_dir=tmp_path / "work",
                        atlas=("brain",))
    workflow = init_single_subject_wf(settings, "01", runs)
    graph = _remove_nonjoin_identity_nodes(workflow._create_flat_graph())
    by_kind = {"tacs": [], "ref_mask": []}
    for node in graph.nodes():
        if node.name in by_kind:
            by_kind[node.name].append(node)
    for kind, nodes in by_kind.items():
        assert len(nodes) == 2, kind                       # one per PET run
        assert {n.fullname.split(".")[1] for n in nodes} == {
            "pet_sub01sesbaselinetrcK2_wf", "pet_sub01sesposttrcK2_wf"}
        for field in ("dseg", "dseg_tsv"):
            sources = [_sources(graph, n, field) for n in nodes]
            assert len(sources[0]) == 1 and sources[0] == sources[1], (kind, field, sources)
            assert sources[0][0][0].startswith("sub_01_wf.anat_wf.")
    anat = [n for n in graph.nodes() if n.name == "t1w_preproc"]
    assert len(anat) == 1
    assert Path(anat[0].inputs.t1w) == tmp_path / "bids" / "sub-01" / "ses-baseline" / \
        "anat" / "sub-01_ses-baseline_T1w.nii.gz"
