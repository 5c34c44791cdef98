"""Rigid co-registration of the PET reference to the T1w."""

from __future__ import annotations

from typing import Literal

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe

from ketpet_bids.interfaces.coreg import CoregPET

METHODS = {
    "ants": (
        "The PET reference was co-registered to the T1w with a rigid transform maximising "
        "Mattes mutual information (ANTs) within the dilated T1w brain mask (T1w at 2 mm), "
        "started from the best of seven poses (centres of mass aligned, and rotated by ±20° "
        "about each axis) and refined at 8, 4 and 2 mm. The result was checked by "
        "re-registering from it and by the fraction of the PET brain inside the T1w brain."
    ),
    "identity": "The PET data were taken as already aligned with the T1w (identity transform).",
}


def init_pet_coreg_wf(*, mode: Literal["ants", "identity"] = "ants", omp_nthreads: int = 1,
                      seed: int = 0, name: str = "pet_coreg_wf") -> pe.Workflow:
    """Build the PET→T1w co-registration workflow.

    Parameters
    ----------
    mode
        ``"ants"`` registers; ``"identity"`` writes the identity transform (data untouched)
        and only scores the alignment.
    omp_nthreads
        ITK threads (and the node's ``n_procs``).
    seed
        Seed of the registration metric's sampling.
    name
        Workflow name.

    Inputs
    ------
    petref
        3D PET reference NIfTI.
    t1w, t1w_mask
        T1w NIfTI and its brain mask (same grid).

    Outputs
    -------
    pet_to_t1w_xfm
        ITK ``AffineTransform_double_3_3`` text file for ``antsApplyTransforms -i petref
        -r T1w -t xfm``.
    pet_to_t1w_matrix
        Text 4×4 RAS ``pet_to_t1w`` matrix (``core.tacs.read_matrix``).
    petref_t1w
        PET reference resampled to the T1w grid.
    coreg_json
        Similarity (Mattes MI), fraction of the PET brain inside the T1w mask, the shift of
        the re-registration check (mm), initialisation and warnings.
    """
    workflow = pe.Workflow(name=name)
    workflow.__desc__ = METHODS[mode]
    inputnode = pe.Node(niu.IdentityInterface(fields=["petref", "t1w", "t1w_mask"]),
                        name="inputnode")
    outputnode = pe.Node(niu.IdentityInterface(
        fields=["pet_to_t1w_xfm", "pet_to_t1w_matrix", "petref_t1w", "coreg_json"]),
        name="outputnode")
    register = pe.Node(CoregPET(mode=mode, seed=seed, omp_nthreads=omp_nthreads),
                       name="coreg_pet", n_procs=omp_nthreads)
    workflow.connect([
        (inputnode, register, [("petref", "petref"), ("t1w", "t1w"),
                               ("t1w_mask", "t1w_mask")]),
        (register, outputnode, [("pet_to_t1w_xfm", "pet_to_t1w_xfm"),
                                ("pet_to_t1w_matrix", "pet_to_t1w_matrix"),
                                ("petref_t1w", "petref_t1w"), ("coreg_json", "coreg_json")]),
    ])
    return workflow
