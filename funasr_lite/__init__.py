"""funasr_lite: Kaldi-style recipe toolkit for Paraformer."""

__version__ = "0.1.0"


def __getattr__(name):
    """``from funasr_lite import Paraformer`` (or ``VAD``) without importing torch on ``import funasr_lite``."""
    if name == "Paraformer":
        from funasr_lite.api import Paraformer

        return Paraformer
    if name == "VAD":
        from funasr_lite.api import VAD

        return VAD
    raise AttributeError(f"module 'funasr_lite' has no attribute {name!r}")
