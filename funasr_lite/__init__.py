"""funasr_lite: Kaldi-style recipe toolkit for Paraformer."""

__version__ = "0.1.0"
