"""Storing: the typed results record and its files, provenance, and the asv database."""
