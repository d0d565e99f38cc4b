"""patchcxr: a reproducible re-implementation of Oh, Park & Ye (IEEE TMI 2020).

"Deep Learning COVID-19 Features on CXR using Limited Training Data Sets"
(doi:10.1109/TMI.2020.2993291, arXiv 2004.05758). The science lives in this package; the
Snakemake workflow under ``workflow/`` only wires its functions to files.
"""

from __future__ import annotations

__version__ = "0.1.0"
