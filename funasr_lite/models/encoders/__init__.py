"""Encoders. `sanm` is defined here; the Conformer encoder lives in encoders/conformer.py."""
