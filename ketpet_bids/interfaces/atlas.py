"""Thin nipype interface: the default combined atlas in template space (``core.atlas``)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    Directory,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from ketpet_bids.bids.sink import write_tsv
from ketpet_bids.core.atlas import ATLAS, combine_default_atlas
from ketpet_bids.core.regions import as_label_array, read_label_table, resample_nearest
from ketpet_bids.core.templates import (
    ATLAS_QUERIES,
    DEFAULT_TEMPLATE,
    SCHAEFER_TABLE_QUERY,
    template_file,
)


class _BuildDefaultAtlasInputSpec(BaseInterfaceInputSpec):
    templateflow_home = Directory(exists=True, desc="TemplateFlow directory (default: "
                                  "$TEMPLATEFLOW_HOME)")
    template = traits.Str(DEFAULT_TEMPLATE, usedefault=True, desc="TemplateFlow template")


class _BuildDefaultAtlasOutputSpec(TraitedSpec):
    dseg = File(exists=True, desc="default atlas label image (uint16) on the aseg's grid")
    dseg_tsv = File(exists=True, desc="its label table (index, name)")


class BuildDefaultAtlas(SimpleInterface):
    """The ``default`` atlas in template space from the template's aseg, Schaefer and MASSP.

    The Schaefer and MASSP images are resampled (nearest neighbour) onto the aseg's grid when
    their grids differ (they do not in TemplateFlow's MNI152NLin2009cAsym).
    """

    input_spec = _BuildDefaultAtlasInputSpec
    output_spec = _BuildDefaultAtlasOutputSpec

    def _run_interface(self, runtime):
        home = Path(self.inputs.templateflow_home) if self.inputs.templateflow_home else None
        template = self.inputs.template
        paths = {key: template_file(template, home=home, **query)
                 for key, query in ATLAS_QUERIES.items()}
        names = read_label_table(template_file(template, home=home, extension=".tsv",
                                               **SCHAEFER_TABLE_QUERY))
        reference = nib.load(paths["aseg"])
        images = {}
        for key, path in paths.items():
            img = reference if key == "aseg" else nib.load(path)
            data = as_label_array(np.asanyarray(img.dataobj), path)
            images[key] = resample_nearest(data, img.affine, reference.shape[:3],
                                           reference.affine)
        labels, table = combine_default_atlas(images["aseg"], images["schaefer"], names,
                                              images["massp"], sources=paths)
        cwd = Path(runtime.cwd)
        out = cwd / f"atlas-{ATLAS}_dseg.nii.gz"
        image = nib.Nifti1Image(labels, reference.affine)
        image.header.set_xyzt_units("mm")
        nib.save(image, out)
        write_tsv(cwd / f"atlas-{ATLAS}_dseg.tsv", table)
        self._results["dseg"] = str(out)
        self._results["dseg_tsv"] = str(cwd / f"atlas-{ATLAS}_dseg.tsv")
        return runtime
