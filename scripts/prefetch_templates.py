"""Pre-fetch the TemplateFlow files ketpet_bids uses (run where the network is reachable).

The Docker image runs this at build time::

    ENV TEMPLATEFLOW_HOME=/opt/templateflow TEMPLATEFLOW_AUTOUPDATE=0
    RUN python scripts/prefetch_templates.py

which downloads, for MNI152NLin2009cAsym (``ketpet_bids.core.templates.REQUIRED``): the 1 mm
T1w, brain mask and GM/WM/CSF priors, the 2 mm T1w and brain mask, and the three 1 mm atlases
of the default atlas (FreeSurfer aseg, MASSP 2.0, Schaefer2018 100 parcels / 7 networks) with
the label tables TemplateFlow has for them. At run time
``ketpet_bids`` reads them from ``TEMPLATEFLOW_HOME`` without network access; on another
machine, run this script once with ``TEMPLATEFLOW_HOME`` set (``--home DIR`` overrides it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="TemplateFlow directory "
                        "(default: $TEMPLATEFLOW_HOME)")
    args = parser.parse_args(argv)
    if args.home:
        os.environ["TEMPLATEFLOW_HOME"] = str(args.home.absolute())
    from templateflow import api  # after TEMPLATEFLOW_HOME is final: its import reads it

    from ketpet_bids.core.templates import DEFAULT_TEMPLATE, REQUIRED

    for query in REQUIRED:
        files = api.get(DEFAULT_TEMPLATE, extension=[".nii.gz", ".tsv"], **query)
        for path in files if isinstance(files, list) else [files]:
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
