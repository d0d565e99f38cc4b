"""Patch-based classification (method.md §5): patch sampling so far."""
