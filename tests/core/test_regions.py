"""Label tables, region volumes and reference definitions on small known label images."""

from __future__ import annotations

import numpy as np
import pytest

from ketpet_bids.core.regions import (
    as_label_array,
    erode_mm,
    read_label_table,
    reference_mask,
    region_volumes,
    resample_nearest,
    unlisted_labels,
)
from ketpet_bids.errors import InputError

# FreeSurfer-style names exercise the name matching.
TABLE = {2: "Left-Cerebral-White-Matter", 3: "Left-Cerebral-Cortex", 4: "Left-Lateral-Ventricle",
         8: "Left-Cerebellum-Cortex", 7: "Left-Cerebellum-White-Matter", 16: "Brain-Stem",
         24: "CSF", 17: "Left-Hippocampus", 31: "Left-choroid-plexus"}


def _labels() -> np.ndarray:
    """10×10×10 image; label k fills a slab of known size."""
    labels = np.zeros((10, 10, 10), dtype=np.int32)
    for row, k in enumerate(sorted(TABLE)):
        labels[row] = k                    # 100 voxels each
    labels[9, :5] = 99                     # 50 voxels of a label the table lacks
    return labels


def test_region_volumes_exact():
    labels = _labels()
    table = {**TABLE, 1000: "Absent"}
    morph = region_volumes(labels, table, voxel_volume_mm3=1.5 * 1.5 * 2.0)
    assert list(morph.columns) == ["index", "name", "volume_mm3"]
    assert list(morph["index"]) == sorted(table)
    got = dict(zip(morph["name"], morph["volume_mm3"], strict=True))
    assert got["CSF"] == pytest.approx(100 * 4.5) and got["Absent"] == 0.0
    assert unlisted_labels(labels, TABLE) == [99]


def test_named_references():
    labels = _labels()
    mask, idx = reference_mask(labels, TABLE, "wholebrain", zooms=(1, 1, 1))
    assert idx == [2, 3, 7, 8, 16, 17]                     # no CSF, ventricle, choroid
    assert mask.sum() == 600 and not mask[labels == 24].any()
    brain = np.zeros_like(labels, dtype=bool)
    brain[:, :, :5] = True
    mask, _ = reference_mask(labels, TABLE, "wholebrain", zooms=(1, 1, 1), brain_mask=brain)
    assert mask.sum() == 300                               # restricted to the brain mask
    assert reference_mask(labels, TABLE, "white-matter", zooms=(1, 1, 1))[1] == [2]
    assert reference_mask(labels, TABLE, "cerebellum-gm", zooms=(1, 1, 1))[1] == [8]
    assert reference_mask(labels, TABLE, "cerebellum", zooms=(1, 1, 1))[1] == [7, 8]
    _, idx = reference_mask(labels, TABLE, "left-hippocampus+Brain_Stem", zooms=(1, 1, 1))
    assert idx == [16, 17]


def test_unknown_reference_lists_names():
    with pytest.raises(InputError, match="Left-Hippocampus") as err:
        reference_mask(_labels(), TABLE, "Left-Hippocampus+Habenula", zooms=(1, 1, 1))
    assert "habenula" in str(err.value).lower() and err.value.where == "--ref-region"
    with pytest.raises(InputError, match="pons"):
        reference_mask(_labels(), TABLE, "pons", zooms=(1, 1, 1))


def test_erosion_by_mm():
    """A 9×9×9 cube eroded by r mm keeps the voxels farther than r from the outside."""
    mask = np.zeros((15, 15, 15), dtype=bool)
    mask[3:12, 3:12, 3:12] = True
    assert erode_mm(mask, (1, 1, 1), 0).sum() == 729
    assert erode_mm(mask, (1, 1, 1), 1.0).sum() == 7 ** 3      # outer shell (1 mm) removed
    assert erode_mm(mask, (1, 1, 1), 2.5).sum() == 5 ** 3      # shells at 1 and 2 mm removed
    # 2 mm voxels along x: the x-faces lie 2 mm from outside (> 1.5, kept), y/z faces 1 mm.
    assert erode_mm(mask, (2, 1, 1), 1.5).sum() == 9 * 7 * 7
    with pytest.raises(InputError, match="empty"):
        reference_mask(mask.astype(int), {1: "Cube"}, "Cube", zooms=(1, 1, 1),
                       erode_radius_mm=5.0)


def test_label_table_and_array_checks(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text("index\tname\tcolor\n0\tUnknown\tx\n1\tCortex\ty\n2\tWM\tz\n")
    assert read_label_table(good) == {1: "Cortex", 2: "WM"}
    for name, text, match in (("nocol.tsv", "label\tname\n1\tA\n", "index"),
                              ("dup.tsv", "index\tname\n1\tA\n1\tB\n", "repeats"),
                              ("frac.tsv", "index\tname\n1.5\tA\n", "non-integer")):
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=match) as err:
            read_label_table(tmp_path / name)
        assert name in str(err.value)
    assert as_label_array(np.array([0.0, 2.0, 5.0]), "x").dtype == np.int32
    with pytest.raises(InputError, match="non-integer"):
        as_label_array(np.array([0.0, 0.4]), "probseg.nii.gz")


def test_resample_nearest_to_coarser_grid():
    fine = np.zeros((8, 8, 8), dtype=np.uint8)
    fine[4:, :, :] = 1                                     # x ≥ 4 mm (voxel centres)
    coarse_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    coarse_aff[:3, 3] = 0.5                                # centres at 0.5, 2.5, 4.5, 6.5
    out = resample_nearest(fine, np.eye(4), (4, 4, 4), coarse_aff)
    assert out[:, 0, 0].tolist() == [0, 0, 1, 1]
