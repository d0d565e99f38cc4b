"""Patch-based classification (method.md §5): lung-centred patch sampling."""
