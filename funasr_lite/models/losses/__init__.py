"""Losses: label-smoothed CE (label_smoothing.py); MWER lives in mwer.py."""

from funasr_lite.models.losses.label_smoothing import LabelSmoothingLoss

__all__ = ["LabelSmoothingLoss"]
