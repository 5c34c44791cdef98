"""The default combined atlas: recipe painted from synthetic TemplateFlow atlases vs truth."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from ketpet_bids.core.atlas import DEFAULT_RECIPE, combine_default_atlas
from ketpet_bids.errors import InputError
from ketpet_bids.interfaces.atlas import BuildDefaultAtlas
from ketpet_bids.sim import phantom
from ketpet_bids.sim.templateflow import (
    SCALE,
    SCHAEFER_NAMES,
    Deformation,
    atlas_images,
    default_atlas_truth,
    write_templateflow,
)

VOXEL_MM, SEED = 3.0, 2


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """The interface run on a 3 mm synthetic tree: (labels, affine, table)."""
    home = write_templateflow(tmp_path_factory.mktemp("tf") / "templateflow",
                              voxel_mm=VOXEL_MM, seed=SEED)
    work = tmp_path_factory.mktemp("work")
    result = BuildDefaultAtlas(templateflow_home=str(home)).run(cwd=str(work))
    img = nib.load(result.outputs.dseg)
    return (np.asarray(img.dataobj), img.affine,
            pd.read_csv(result.outputs.dseg_tsv, sep="\t"))


@pytest.fixture(scope="module")
def phantom_images() -> dict[str, np.ndarray]:
    """aseg/Schaefer/MASSP of the undeformed phantom on a 3 mm grid (fast inputs)."""
    shape = (64, 76, 64)
    return atlas_images(phantom.build_labels(shape, VOXEL_MM),
                        phantom.phantom_coordinates(shape, VOXEL_MM))


def test_every_region_has_its_true_volume(built):
    """Template volume of each region = SCALE³ × its volume in the undeformed phantom (the
    deformation's sinusoidal part preserves volume to 2nd order). Truth is rasterised on a
    3 mm grid too (the phantom's cortical depth, hence ribbon volume, depends on the voxel
    size) whose nodes straddle x = 0, so the 6 mm medial sheet splits evenly. Two 3 mm
    rasterisations of a region differ by up to a fraction of its boundary shell: we allow
    10 % + 4 voxels (108 mm³), the voxel term dominating for small nuclei (200–600 mm³).
    Measured over seeds 0, 2, 5, 11: at most 0.63 of this tolerance (large regions ≤ 6.4 %)."""
    labels, affine, table = built
    assert table["name"].tolist() == [r.name for r in DEFAULT_RECIPE]
    assert table["index"].tolist() == list(range(1, len(DEFAULT_RECIPE) + 1))
    assert labels.dtype == np.uint16 and np.allclose(np.diag(affine)[:3], VOXEL_MM)
    truth, _ = default_atlas_truth((64, 76, 64), VOXEL_MM)
    volume = np.bincount(labels.ravel(), minlength=len(table) + 1) * VOXEL_MM**3
    true = np.bincount(truth.ravel(), minlength=len(table) + 1) * VOXEL_MM**3 * SCALE**3
    for index, name in zip(table["index"], table["name"], strict=True):
        if name.startswith("habenula"):  # 34 mm³ × SCALE³ = 1.4 voxels; ≥ 1 (centre's voxel)
            assert VOXEL_MM**3 <= volume[index] <= 3 * VOXEL_MM**3, name
            continue
        assert abs(volume[index] - true[index]) <= 0.1 * true[index] + 4 * VOXEL_MM**3, (
            name, volume[index], true[index])


def test_habenula_sits_at_the_deformed_true_centre(built):
    labels, affine, table = built
    deformation = Deformation.from_seed(3.0, SEED)
    for name, centre in phantom.HABENULA_CENTRES_MM.items():
        index = int(table.loc[table["name"] == name, "index"].iloc[0])
        voxels = np.argwhere(labels == index)
        found = (affine[:3, :3] @ voxels.mean(axis=0)) + affine[:3, 3]
        expected = deformation.phantom_to_template(np.asarray(centre))
        assert np.all(np.abs(found - expected) <= VOXEL_MM), (name, found, expected)
        assert np.sign(found[0]) == (-1 if name.endswith("left") else 1)


def _region_of_parcel(parcel: int) -> str:
    _, hemi, network, _ = SCHAEFER_NAMES[parcel].split("_")
    return f"cortex-{network.lower()}-{'left' if hemi == 'LH' else 'right'}"


def test_recipe_layers_paint_in_order(phantom_images):
    """Schaefer only inside aseg cortex, where aseg cortex without a parcel takes the network
    of a nearest parcel voxel (checked by brute force); MASSP habenula over aseg thalamus."""
    aseg, schaefer, massp = (phantom_images[k].copy() for k in ("aseg", "schaefer", "massp"))
    names = {r.name: i for i, r in enumerate(DEFAULT_RECIPE, start=1)}
    gap = (schaefer == 9) & (np.arange(64)[:, None, None] < 16)   # LH Limbic_1, x < -49 mm
    schaefer[gap] = 0
    stray = tuple(np.argwhere(aseg == 2)[0])                        # a cerebral WM voxel
    schaefer[stray] = 3
    labels, _ = combine_default_atlas(aseg, schaefer, SCHAEFER_NAMES, massp)
    parcels = np.argwhere(schaefer > 0)
    for voxel in np.argwhere(gap):
        distance = ((parcels - voxel) ** 2).sum(axis=1)
        nearest = schaefer[tuple(parcels[distance == distance.min()].T)]
        assert labels[tuple(voxel)] in {names[_region_of_parcel(p)] for p in nearest}
    assert gap.sum() > 20 and labels[stray] == names["white-matter"]
    under = np.isin(aseg, (10, 49)) & np.isin(massp, (36, 37))
    assert under.any() and set(np.unique(labels[under])) <= {names["habenula-left"],
                                                              names["habenula-right"]}
    cortex = np.isin(aseg, (3, 42))
    assert np.all(labels[cortex] >= names["cortex-vis-left"])      # every cortex voxel named
    assert not np.isin(labels[~cortex], [names[f"cortex-vis-{s}"] for s in ("left", "right")]
                       ).any()


def test_empty_region_names_the_atlas_file_and_labels(phantom_images):
    aseg, schaefer, massp = (phantom_images[k] for k in ("aseg", "schaefer", "massp"))
    sources = {"aseg": Path("tpl_aseg.nii.gz"), "massp": Path("tpl_massp.nii.gz")}
    with pytest.raises(InputError, match=r"tpl_massp\.nii\.gz: region habenula-left .*\[36\]"):
        combine_default_atlas(aseg, schaefer, SCHAEFER_NAMES, np.where(massp == 36, 0, massp),
                              sources=sources)
    with pytest.raises(InputError, match=r"tpl_aseg\.nii\.gz: region pallidum-right .*\[52\]"):
        combine_default_atlas(np.where(aseg == 52, 2, aseg), schaefer, SCHAEFER_NAMES, massp,
                              sources=sources)
    renamed = {i: n.replace("Limbic", "Limbique") for i, n in SCHAEFER_NAMES.items()}
    with pytest.raises(InputError, match=r"schaefer: region cortex-limbic-left .*"
                                         r"7Networks_LH_Limbic_"):
        combine_default_atlas(aseg, schaefer, renamed, massp)
    with pytest.raises(InputError, match="differ in shape"):
        combine_default_atlas(aseg, schaefer[:-1], SCHAEFER_NAMES, massp)
