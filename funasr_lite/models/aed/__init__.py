"""Attention encoder-decoder models (FunASR's ``Conformer``): the model and its Transformer decoder."""

from funasr_lite.models.aed.decoder import TransformerDecoder
from funasr_lite.models.aed.model import Conformer

__all__ = ["Conformer", "TransformerDecoder"]
