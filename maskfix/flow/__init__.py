"""Mask provenance: where the values reaching an attention call come from."""
