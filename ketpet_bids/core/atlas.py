"""The default combined atlas (``default``) in template space, from three template atlases.

:data:`DEFAULT_RECIPE` paints regions in order, later layers overriding earlier ones:

1. FreeSurfer ``aseg`` of the template [Fischl2002]: the subcortical nuclei (caudate, putamen,
   pallidum, thalamus, hippocampus, amygdala, accumbens; left and right), ``cerebellum-gm``
   (cerebellar cortex, both sides), ``brainstem`` and ``white-matter`` (cerebral white
   matter, both sides). Other aseg labels (ventricles, CSF, ventral DC, …) stay unlabelled.
2. Schaefer 2018, 100 parcels, 7 networks [Schaefer2018]: parcels grouped by network and
   hemisphere into ``cortex-<network>-<left|right>`` (``vis``, ``sommot``, ``dorsattn``,
   ``salventattn``, ``limbic``, ``cont``, ``default``), painted only where aseg says cerebral
   cortex (3, 42); aseg cortex that no parcel covers takes the nearest parcel's network.
3. MASSP 2.0 [Bazin2020]: ``habenula-left`` and ``habenula-right`` (lateral habenula) on top.

Label values are those of the atlases as distributed by TemplateFlow for
MNI152NLin2009cAsym: FreeSurfer's LUT for aseg, the parcel names of the Schaefer table, and for
MASSP 2.0 the label list of nighres (``nighres/parcellation/massp_2p0-label-list.txt``,
commit ae5fd16 of github.com/nighres/nighres: "36 : Lateral habenula : lh : l",
"37 : Lateral habenula : lh : r"). TemplateFlow ships the MASSP 2.0 image with a label table
(``tpl-MNI152NLin2009cAsym_res-01_atlas-MASSP20_dseg.tsv``) that we could not inspect
offline; the recipe therefore carries the indices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import ndimage

from ketpet_bids.errors import InputError

ATLAS = "default"
"""Name of the combined atlas (outputs ``seg-default``)."""
ASEG_CORTEX = (3, 42)
"""FreeSurfer aseg values of the left and right cerebral cortex."""
SCHAEFER_NETWORKS = ("Vis", "SomMot", "DorsAttn", "SalVentAttn", "Limbic", "Cont", "Default")


@dataclass(frozen=True)
class RecipeRegion:
    """One region of the default atlas.

    Attributes
    ----------
    name
        Region name in the combined atlas (lowercase, hyphens).
    source
        Atlas it is painted from: ``"aseg"``, ``"schaefer"`` or ``"massp"``.
    labels
        Label values in ``source`` (aseg, MASSP), or for Schaefer the prefix of the parcel
        names grouped into the region (``"7Networks_LH_Default_"``).
    """

    name: str
    source: Literal["aseg", "schaefer", "massp"]
    labels: tuple[int, ...] | str


_SUBCORTICAL_ASEG = (("caudate", 11, 50), ("putamen", 12, 51), ("pallidum", 13, 52),
                     ("thalamus", 10, 49), ("hippocampus", 17, 53), ("amygdala", 18, 54),
                     ("accumbens", 26, 58))  # FreeSurferColorLUT: Left-*, Right-*
DEFAULT_RECIPE: tuple[RecipeRegion, ...] = (
    *(RecipeRegion(f"{name}-{side}", "aseg", (value,)) for name, left, right in _SUBCORTICAL_ASEG
      for side, value in (("left", left), ("right", right))),
    RecipeRegion("cerebellum-gm", "aseg", (8, 47)),   # Left/Right-Cerebellum-Cortex
    RecipeRegion("brainstem", "aseg", (16,)),          # Brain-Stem
    RecipeRegion("white-matter", "aseg", (2, 41)),     # Left/Right-Cerebral-White-Matter
    *(RecipeRegion(f"cortex-{net.lower()}-{side}", "schaefer", f"7Networks_{hemi}_{net}_")
      for net in SCHAEFER_NETWORKS for side, hemi in (("left", "LH"), ("right", "RH"))),
    RecipeRegion("habenula-left", "massp", (36,)),     # MASSP 2.0 "Lateral habenula : l"
    RecipeRegion("habenula-right", "massp", (37,)),    # MASSP 2.0 "Lateral habenula : r"
)
"""The default atlas: regions in painting order; region ``i`` (from 1) gets label ``i``."""


def _nearest_parcel(schaefer: np.ndarray, cortex: np.ndarray) -> np.ndarray:
    """``schaefer`` with the aseg-cortex voxels it leaves at 0 set to the nearest parcel."""
    gaps = cortex & (schaefer == 0)
    if not gaps.any() or not schaefer.any():
        return schaefer
    nearest = ndimage.distance_transform_edt(schaefer == 0, return_distances=False,
                                             return_indices=True)
    filled = schaefer.copy()
    filled[gaps] = schaefer[tuple(axis[gaps] for axis in nearest)]
    return filled


def combine_default_atlas(aseg: np.ndarray, schaefer: np.ndarray,
                          schaefer_names: Mapping[int, str], massp: np.ndarray, *,
                          sources: Mapping[str, str | Path] | None = None
                          ) -> tuple[np.ndarray, pd.DataFrame]:
    """Paint :data:`DEFAULT_RECIPE` from the three template atlases (same grid).

    Parameters
    ----------
    aseg, schaefer, massp
        Integer label images of one shape ``(X, Y, Z)``: FreeSurfer aseg, Schaefer 2018
        (100 parcels, 7 networks) and MASSP 2.0.
    schaefer_names
        Schaefer label table (index → parcel name, e.g. ``7Networks_LH_Vis_1``).
    sources
        Optional names of the atlas files by source (``"aseg"``, ``"schaefer"``,
        ``"massp"``), used in error messages.

    Returns
    -------
    tuple
        ``uint16`` labels ``(X, Y, Z)`` (0 = none) and the table (``index``, ``name``) of the
        :data:`DEFAULT_RECIPE` regions, indices 1….

    Raises
    ------
    InputError
        When the images differ in shape, or a region of the recipe is empty (naming the atlas
        file and the labels it was expected to hold).
    """
    where = {key: str(value) for key, value in (sources or {}).items()}
    images = {"aseg": np.asarray(aseg), "schaefer": np.asarray(schaefer),
              "massp": np.asarray(massp)}
    shapes = {key: image.shape for key, image in images.items()}
    if len(set(shapes.values())) != 1:
        raise InputError(", ".join(where.get(k, k) for k in images),
                         f"template atlases differ in shape: {shapes}",
                         "give atlases of one template resolution")
    cortex = np.isin(images["aseg"], ASEG_CORTEX)
    images["schaefer"] = _nearest_parcel(images["schaefer"], cortex)
    out = np.zeros(shapes["aseg"], dtype=np.uint16)
    for index, region in enumerate(DEFAULT_RECIPE, start=1):
        if isinstance(region.labels, str):
            values = [i for i, name in schaefer_names.items() if name.startswith(region.labels)]
            expected = f"parcels named {region.labels}*"
        else:
            values, expected = list(region.labels), f"label(s) {list(region.labels)}"
        mask = np.isin(images[region.source], values)
        if region.source == "schaefer":
            mask &= cortex
        if not mask.any():
            raise InputError(where.get(region.source, region.source),
                             f"region {region.name} of the default atlas is empty: no voxel "
                             f"with {expected}" + (" inside the aseg cerebral cortex"
                                                   if region.source == "schaefer" else ""),
                             "use the TemplateFlow MNI152NLin2009cAsym atlases")
        out[mask] = index
    table = pd.DataFrame({"index": np.arange(1, len(DEFAULT_RECIPE) + 1),
                          "name": [r.name for r in DEFAULT_RECIPE]})
    return out, table
