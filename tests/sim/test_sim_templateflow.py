"""The synthetic TemplateFlow tree: found offline by ``template_file``, deformation as stated."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from ketpet_bids.core.templates import DEFAULT_TEMPLATE, REQUIRED, template_file
from ketpet_bids.sim import phantom
from ketpet_bids.sim.templateflow import SCALE, Deformation, grid_world, write_templateflow

VOXEL_MM, DEFORM_MM = 3.0, 3.0


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_templateflow(tmp_path_factory.mktemp("tf") / "templateflow", voxel_mm=VOXEL_MM,
                              deform_mm=DEFORM_MM, seed=7)


@pytest.fixture
def offline(tree, templateflow_offline) -> list:
    """TEMPLATEFLOW_HOME at the tree; any download attempt is recorded and fails."""
    return templateflow_offline(tree)


def _deformation(tree: Path) -> Deformation:
    recorded = json.loads((tree / f"tpl-{DEFAULT_TEMPLATE}" / "template_description.json")
                          .read_text())["KetpetBidsDeformation"]
    recorded.pop("note")
    return Deformation(**{**recorded, "phases": tuple(recorded["phases"])})


def _skeleton_names() -> set[str]:
    """File names of the real TemplateFlow archive, as listed by the installed client."""
    from importlib import resources

    skeleton = resources.files("templateflow") / "conf" / "templateflow-skel.zip"
    with resources.as_file(skeleton) as path, zipfile.ZipFile(path) as archive:
        return set(archive.namelist())


def test_every_required_query_finds_one_real_file_without_network(tree, offline):
    real = _skeleton_names()
    for query in REQUIRED:
        extension = ".nii.gz" if query.get("resolution") else ".tsv"
        path = template_file(extension=extension, **query)
        assert path.parent == tree / f"tpl-{DEFAULT_TEMPLATE}" and path.stat().st_size > 0
        assert f"tpl-{DEFAULT_TEMPLATE}/{path.name}" in real     # TemplateFlow's own name
        if extension == ".nii.gz":   # res-01 holds the voxel_mm grid, res-02 twice that
            zooms = nib.load(path).header.get_zooms()[:3]
            assert zooms == pytest.approx([VOXEL_MM * query["resolution"]] * 3)
    massp_table = template_file(extension=".tsv", resolution=1, suffix="dseg", atlas="MASSP20")
    assert massp_table.name == f"tpl-{DEFAULT_TEMPLATE}_res-01_atlas-MASSP20_dseg.tsv"
    assert offline == []


def test_template_point_shows_the_phantom_at_the_deformed_point(tree, offline):
    """aseg putamen (12/51) is exactly where the deformed point falls in the analytic putamen
    ellipsoid (no later shape overlaps it), and the deformation has the stated size."""
    img = nib.load(template_file(resolution=1, suffix="dseg", segmentation="aseg"))
    aseg = np.asarray(img.dataobj)
    deformation = _deformation(tree)
    world = grid_world(aseg.shape, img.affine)
    q = deformation.template_to_phantom(world)
    centre, semi = np.array([24.0, 4.0, 2.0]), np.array([5.0, 12.0, 8.0])  # phantom's putamen
    for sign, value in ((-1.0, 12), (1.0, 51)):
        inside = ((((q.T - centre * [sign, 1, 1]) / semi) ** 2).sum(axis=-1) <= 1.0).T
        assert inside.sum() > 50                             # ~2300 mm³ / 27 mm³ voxels
        assert np.count_nonzero(inside != (aseg == value)) <= 1   # float32 rounding at most
    u = q - world / SCALE
    largest = np.abs(u).reshape(3, -1).max(axis=1)
    assert np.all(largest <= DEFORM_MM) and np.all(largest > 0.98 * DEFORM_MM)
    assert np.allclose(deformation.template_to_phantom(np.zeros(3)), 0.0)  # same origin
    sample = (slice(None), slice(None, None, 4), slice(None, None, 4), slice(None, None, 4))
    assert np.abs(deformation.phantom_to_template(q[sample]) - world[sample]).max() < 1e-9


def test_template_brain_is_the_scaled_phantom_brain(tree, offline):
    """Brain-mask volume = SCALE³ × phantom brain volume (the sinusoidal part preserves volume
    to 2nd order; 3 mm rasterisation of a ~1.6 L brain is good to < 1 %); WM T1w ≈ 1000."""
    img = nib.load(template_file(resolution=1, suffix="mask", desc="brain"))
    volume = np.count_nonzero(np.asarray(img.dataobj)) * VOXEL_MM**3
    labels = phantom.build_labels((64, 76, 64), VOXEL_MM)
    truth = np.count_nonzero(phantom.atlas_labels(labels)) * VOXEL_MM**3 * SCALE**3
    assert volume == pytest.approx(truth, rel=0.01)
    t1w = np.asarray(nib.load(template_file(resolution=1, suffix="T1w", desc=None)).dataobj)
    aseg = np.asarray(nib.load(template_file(resolution=1, suffix="dseg",
                                             segmentation="aseg")).dataobj)
    assert np.median(t1w[np.isin(aseg, (2, 41))]) == pytest.approx(1000.0, rel=0.01)
