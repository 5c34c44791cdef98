"""Methods boilerplate: a paragraph describing what ran, with references.

:func:`methods_text` turns the stages that actually ran (and their settings) into prose with
pandoc-style citations (``[@Logan1990]``) followed by a plain-text reference list;
:func:`write_citation` writes it with the matching BibTeX entries to ``logs/CITATION.md`` and
``logs/CITATION.bib``. The bibliography lives in ``ketpet_bids/data/citations.bib``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from ketpet_bids.bids.naming import citation_paths
from ketpet_bids.bids.sink import write_with

CITATION_MD, CITATION_BIB = citation_paths()

#: Distributions whose versions the report and the methods text state.
SOFTWARE = ("ketpet_bids", "nipype", "antspyx", "nibabel", "pybids", "numpy", "scipy", "pandas",
            "statsmodels", "matplotlib", "templateflow")

MODEL_NAMES = {
    "suv": ("standardised uptake values (SUV)", ()),
    "suvr": ("standardised uptake value ratios (SUVR)", ()),
    "patlak": ("Patlak graphical analysis", ("Patlak1983",)),
    "logan": ("Logan graphical analysis", ("Logan1990",)),
    "ma1": ("Ichise's multilinear analysis (MA1)", ("Ichise2002",)),
    "srtm": ("the simplified reference tissue model (SRTM)", ("Lammertsma1996",)),
    "srtm2": ("SRTM2, the simplified reference tissue model with a fixed k2'",
              ("Lammertsma1996",)),
    "mrtm": ("the multilinear reference tissue model (MRTM)", ("Ichise2003",)),
    "mrtm2": ("the two-parameter multilinear reference tissue model (MRTM2)", ("Ichise2003",)),
    "1tcm": ("the one-tissue compartment model", ()),
    "2tcm": ("the two-tissue compartment model", ()),
}

PVC_NAMES = {
    "gtm": ("the geometric transfer matrix (GTM)", ("Rousset1998",)),
    "rbv": ("region-based voxel-wise correction (RBV)", ("Thomas2011",)),
    "mg": ("Müller-Gärtner correction (MG)", ()),
    "iy": ("iterative Yang correction (IY)", ()),
    "vc": ("Van Cittert deconvolution (VC)", ()),
    "rl": ("Richardson-Lucy deconvolution (RL)", ()),
}


def software_versions(names: Iterable[str] = SOFTWARE) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` when absent)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _cite(*keys: str) -> str:
    return f" [{'; '.join('@' + k for k in keys)}]" if keys else ""


def _join(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _anat(s: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    if s.get("source") == "derivatives":
        out = [f"Preprocessed T1-weighted (T1w) images, brain masks and tissue maps were taken "
               f"from existing anatomical derivatives ({s.get('derivatives', 'given by the user')})."]
    else:
        out = ["The T1-weighted (T1w) image was corrected for intensity non-uniformity with "
               "N4" + _cite("Tustison2010") + ", skull-stripped and segmented into grey "
               "matter, white matter and cerebrospinal fluid with Atropos"
               + _cite("Avants2011atropos") + "."]
    if s.get("reference") == "unbiased":
        out.insert(0, "Each participant's T1w images from all sessions were rigidly aligned "
                   "to an unbiased mid-space and averaged" + _cite("Reuter2012") + "; this "
                   "average served as the anatomical reference of every session.")
    elif s.get("reference"):
        out.insert(0, f"The T1w image of {s['reference']} served as the anatomical reference "
                   "of every session.")
    if s.get("template"):
        out.append(f"It was normalised to the {s['template']} template{_cite('Fonov2011')} "
                   f"with symmetric diffeomorphic (SyN) registration in ANTs"
                   f"{_cite('Avants2008')}.")
    return out, {"source", "derivatives", "template", "reference"}


def _hmc(s: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    out = ["Head motion was corrected by rigid-body (six-parameter) registration of each PET "
           "frame to a reference image with ANTs" + _cite("Avants2011") + "; framewise "
           "displacement (FD) was computed from the motion parameters" + _cite("Power2012")
           + "."]
    if "start_time" in s:
        out.append(f"Frames starting before {s['start_time']:g} s after injection (too few "
                   "counts to register) took the transform of the first later frame.")
    if "reference" in s:
        out.append(f"The registration reference was {s['reference']}.")
    return out, {"start_time", "reference"}


def _coreg(s: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    if s.get("method") == "identity":
        how = "with an identity transform (the images were assumed to be aligned)"
    else:
        how = ("with a rigid-body (six-parameter) transform maximising mutual information in "
               "ANTs" + _cite("Avants2011"))
    return [f"The PET reference (the time-weighted mean of the motion-corrected frames) was "
            f"co-registered to the T1w image {how}."], {"method"}


def _regions(s: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    atlases = list(s.get("atlases", ()))
    what = f"the {_join(atlases)} segmentation{'s' if len(atlases) > 1 else ''}" if atlases \
        else "the chosen segmentation"
    out = [f"Regions of interest were defined in T1w space by {what}."]
    if "default" in atlases:
        out.append("The default atlas combined, in template space, FreeSurfer's aseg "
                   "subcortical nuclei, cerebellar grey matter, brainstem and white matter"
                   + _cite("Fischl2002") + ", the Schaefer 100-parcel 7-network cortical "
                   "parcellation grouped by network and hemisphere" + _cite("Schaefer2018")
                   + " and the MASSP habenulae" + _cite("Bazin2020") + ", and was brought "
                   "into T1w space through the inverse of the template transform.")
    if s.get("fs_subjects_dir"):
        out.append(f"FreeSurfer segmentations were read from {s['fs_subjects_dir']}.")
    return out, {"atlases", "fs_subjects_dir"}


def _pvc(s: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    methods = [str(m).lower() for m in s.get("methods", ())]
    named = [PVC_NAMES.get(m, (m, ()))[0] + _cite(*PVC_NAMES.get(m, (m, ()))[1])
             for m in methods]
    out = [f"Partial-volume effects were corrected with {_join(named) if named else 'PVC'}, "
           f"following the implementations of PETPVC{_cite('Thomas2016')}."]
    if "psf_fwhm_mm" in s:
        fwhm = s["psf_fwhm_mm"]
        fwhm = fwhm if isinstance(fwhm, (list, tuple)) else [fwhm]
        out.append(f"The scanner point-spread function was modelled as a Gaussian with a full "
                   f"width at half maximum of {' × '.join(f'{v:g}' for v in fwhm)} mm.")
    return out, {"methods", "psf_fwhm_mm"}


def _tacs(s: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    return ["Regional time-activity curves were computed as means over PET voxels weighted by "
            "the fraction of each PET voxel covered by the region (T1w-space labels mapped "
            "through the PET-to-T1w transform)."], set()


def _blood(s: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    out = ["The arterial input function was taken from the metabolite-corrected plasma "
           "recordings (plasma activity times parent fraction), with whole-blood activity "
           "for the blood volume term."]
    if "interpolation" in s:
        out.append(f"Blood samples were interpolated onto the PET time grid by "
                   f"{s['interpolation']} interpolation.")
    return out, {"interpolation"}


def _models(s: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    models = [str(m).lower() for m in s.get("models", ())]
    named = [MODEL_NAMES.get(m, (m, ()))[0] + _cite(*MODEL_NAMES.get(m, (m, ()))[1])
             for m in models]
    out = [f"Kinetic parameters were estimated with {_join(named) if named else 'the chosen models'}."]
    if "ref_region" in s:
        out.append(f"The reference region was {s['ref_region']}.")
    if "suvr_window" in s:
        start, end = s["suvr_window"]
        out.append(f"Uptake ratios used the frames between {start / 60:g} and {end / 60:g} min "
                   "after injection.")
    if "tstar" in s:
        out.append(f"Graphical analyses used frames after t* = {s['tstar'] / 60:g} min.")
    if "voxelwise" in s and s["voxelwise"] != "none":
        out.append(f"Parametric maps were computed voxel by voxel in {s['voxelwise']} space.")
    if s.get("preset") == "k2":
        out.append("Defaults followed the [11C]K-2 AMPA-receptor PET protocol"
                   + _cite("Miyazaki2020") + ".")
    return out, {"models", "ref_region", "suvr_window", "tstar", "voxelwise", "preset"}


def _group(s: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    out = ["Group-level analyses estimated regional effects with confidence intervals and "
           "controlled the false discovery rate across regions with the Benjamini–Hochberg "
           "procedure" + _cite("Benjamini1995") + "."]
    if s.get("analyses"):
        out.append(f"The analyses were: {_join([str(a) for a in s['analyses']])}.")
    return out, {"analyses"}


#: Stage name → sentence builder, in the order the stages run.
STAGES: dict[str, Callable[[Mapping[str, Any]], tuple[list[str], set[str]]]] = {
    "anat": _anat, "hmc": _hmc, "coreg": _coreg, "regions": _regions, "pvc": _pvc,
    "tacs": _tacs, "blood": _blood, "models": _models, "group": _group,
}


def methods_text(stages: Mapping[str, Mapping[str, Any]], versions: Mapping[str, str]) -> str:
    """A methods paragraph naming only the stages (and settings) that ran, with references.

    Parameters
    ----------
    stages
        Stage name (a key of :data:`STAGES`) → its settings. Recognised settings: ``anat``
        {source, derivatives, template}; ``hmc`` {start_time (s), reference}; ``coreg``
        {method}; ``regions`` {atlases, fs_subjects_dir}; ``pvc`` {methods, psf_fwhm_mm};
        ``tacs`` {}; ``blood`` {interpolation}; ``models`` {models, ref_region, suvr_window
        (s, s), tstar (s), voxelwise, preset}; ``group`` {analyses}. Any other setting is
        listed verbatim, so nothing that ran goes unmentioned.
    versions
        Software name → version (e.g. :func:`software_versions`).

    Returns
    -------
    str
        Markdown: the paragraph with ``[@key]`` citations, then a "References" list.

    Raises
    ------
    ValueError
        For a stage name that is not in :data:`STAGES`.
    """
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stages {sorted(unknown)}; known: {list(STAGES)}")
    own = f" {versions['ketpet_bids']}" if "ketpet_bids" in versions else ""
    others = ", ".join(f"{n} {v}" for n, v in versions.items() if n != "ketpet_bids")
    sentences = [f"Data were processed with ketpet_bids{own}"
                 f"{f' ({others})' if others else ''}, a workflow built on "
                 f"Nipype{_cite('Gorgolewski2011')} that reads BIDS-PET data"
                 f"{_cite('Norgaard2022')} and writes PET derivatives following the BIDS "
                 f"PET-preprocessing derivatives proposal{_cite('BEP023')}."]
    for name, build in STAGES.items():
        if name not in stages:
            continue
        settings = stages[name]
        text, known = build(settings)
        sentences += text
        extra = {k: v for k, v in settings.items() if k not in known}
        if extra:
            listed = "; ".join(f"{k} = {v}" for k, v in extra.items())
            sentences.append(f"Other {name} settings: {listed}.")
    paragraph = " ".join(sentences)
    keys = cited_keys(paragraph)
    bib = load_bibliography()
    references = "\n".join(f"- [{k}] {format_reference(bib[k])}" for k in keys)
    return f"{paragraph}\n\n## References\n\n{references}\n"


def cited_keys(text: str) -> list[str]:
    """Citation keys cited as ``@key`` in ``text``, in order of first use."""
    return list(dict.fromkeys(re.findall(r"@([A-Za-z][A-Za-z0-9]*)", text)))


@cache
def _bib_text() -> str:
    return resources.files("ketpet_bids").joinpath("data/citations.bib").read_text("utf-8")


def _entries() -> dict[str, str]:
    """Citation key → raw BibTeX entry."""
    found = re.findall(r"(@\w+\{([^,\s]+),.*?\n\})", _bib_text(), flags=re.S)
    return {key: entry for entry, key in found}


def load_bibliography() -> dict[str, dict[str, str]]:
    """Parse ``data/citations.bib``: key → {field: value} (one field per line)."""
    return {key: dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?\s*$", entry, flags=re.M))
            for key, entry in _entries().items()}


def _plain(value: str) -> str:
    return value.replace(r"{\o}", "ø").replace("{", "").replace("}", "").replace("--", "–")


def format_reference(fields: Mapping[str, str]) -> str:
    """One reference as plain text: authors (year). Title. Journal volume(number):pages."""
    authors = [a.strip() for a in fields.get("author", "").split(" and ")]
    names = [a.split(",")[0] if a != "others" else "et al." for a in authors if a]
    parts = [f"{_plain(', '.join(names))} ({fields['year']})." if "year" in fields
             else f"{_plain(', '.join(names))}.", _plain(fields.get("title", "")) + "."]
    if "journal" in fields:
        source = _plain(fields["journal"])
        if "volume" in fields:
            source += f" {fields['volume']}"
            source += f"({fields['number']})" if "number" in fields else ""
        source += f":{_plain(fields['pages'])}" if "pages" in fields else ""
        parts.append(source + ".")
    if "note" in fields:
        parts.append(_plain(fields["note"]) + ".")
    if "doi" in fields:
        parts.append(f"doi:{fields['doi']}")
    return " ".join(parts)


def cited_bibtex(text: str) -> str:
    """BibTeX entries of the keys cited in ``text``, in order of first use."""
    entries = _entries()
    return "\n\n".join(entries[k] for k in cited_keys(text) if k in entries) + "\n"


def write_citation(output_dir: Path, text: str, bib: str) -> tuple[Path, Path]:
    """Write ``logs/CITATION.md`` (the methods text) and ``logs/CITATION.bib`` atomically.

    Parameters
    ----------
    output_dir
        Root of the derivatives.
    text
        Output of :func:`methods_text`.
    bib
        BibTeX entries, usually ``cited_bibtex(text)``.

    Returns
    -------
    tuple of pathlib.Path
        The Markdown and BibTeX files written.
    """
    md = write_with(Path(output_dir) / CITATION_MD,
                    lambda tmp: tmp.write_text("# Methods\n\n" + text, encoding="utf-8"))
    bibfile = write_with(Path(output_dir) / CITATION_BIB,
                         lambda tmp: tmp.write_text(bib, encoding="utf-8"))
    return md, bibfile
