"""Helpers shared by the thin entry points in funasr_lite/bin/."""

import argparse


def str2bool(value: str) -> bool:
    """argparse type for Kaldi-style booleans: true/false (also 1/0, yes/no)."""
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
