"""Data: source readers, downloads, harmonisation, manifest, cohorts, splits, quarantine.

This subpackage knows nothing of models (docs/architecture.md): it turns the sources named in
the configuration into ``results/data/manifest.tsv`` and the split files.
"""
