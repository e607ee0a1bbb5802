"""Showing: terminal tables and progress (rich), plots, the published site, comparisons."""
