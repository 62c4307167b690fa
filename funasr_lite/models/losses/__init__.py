"""Losses: label-smoothed CE (label_smoothing.py), AAM-softmax for speaker models (aam_softmax.py);
MWER lives in mwer.py."""

from funasr_lite.models.losses.aam_softmax import AAMSoftmaxLoss
from funasr_lite.models.losses.label_smoothing import LabelSmoothingLoss

__all__ = ["AAMSoftmaxLoss", "LabelSmoothingLoss"]
