"""FunASR's CT-Transformer punctuation model: token embedding -> SAN-M encoder -> linear classifier.

One label per input token: the punctuation that follows it. FunASR's released Chinese model
(``punc_ct-transformer_zh-cn-common-vocab272727-pytorch``) has the labels
``<unk> _ ， 。 ？ 、`` (``_`` = no punctuation, ``<unk>`` never a training target) and
``sentence_end_id`` 3 (``。``). Parameter names (``embed``, ``encoder.*``, ``decoder``) are
FunASR's ``CTTransformer``'s, so its ``model.pt`` loads with strict=True.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.encoders.sanm import SANMEncoder
from funasr_lite.models.modules.mask import sequence_mask

DEFAULT_PUNC_LIST = ("<unk>", "_", "，", "。", "？", "、")
NO_PUNC = "_"  # the label meaning "no punctuation after this token"

# Encoders a punctuation config may name (FunASR's registry names).
ENCODERS = {"SANMEncoder": SANMEncoder}


class CTTransformer(nn.Module):
    """Token ids (B, U) -> punctuation logits (B, U, len(punc_list)).

    Keyword names follow FunASR's ``model_conf`` (``embed_unit``, ``att_unit``, ``punc_list``,
    ``punc_weight``, ``sentence_end_id``, ``ignore_id``); ``dropout_rate``, ``sos`` and ``eos`` are
    accepted for config compatibility (FunASR's model uses none of them in its forward pass).
    """

    def __init__(
        self,
        vocab_size: int,
        punc_list: Sequence[str] = DEFAULT_PUNC_LIST,
        encoder: str = "SANMEncoder",
        encoder_conf: Optional[Dict] = None,
        punc_weight: Optional[Sequence[float]] = None,
        embed_unit: int = 128,
        att_unit: int = 256,
        dropout_rate: float = 0.5,
        ignore_id: int = -1,
        sos: int = 1,
        eos: int = 2,
        sentence_end_id: int = 3,
    ):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown punctuation encoder {encoder!r} (supported: {', '.join(ENCODERS)})")
        if vocab_size <= 0:
            raise ValueError(f"vocab_size must be > 0, got {vocab_size}")
        self.punc_list = list(punc_list)
        if not 0 <= sentence_end_id < len(self.punc_list):
            raise ValueError(f"sentence_end_id {sentence_end_id} is not an index of punc_list {self.punc_list}")
        weights = [1.0] * len(self.punc_list) if punc_weight is None else [float(w) for w in punc_weight]
        if len(weights) != len(self.punc_list):
            raise ValueError(f"punc_weight has {len(weights)} entries, punc_list {len(self.punc_list)}")
        self.embed = nn.Embedding(vocab_size, embed_unit)
        # The encoder scales its input by sqrt(output_size); N(0, 1/embed_unit) keeps the scaled
        # embeddings at unit size, so the layers' residual updates are not swamped at the start of
        # training (nn.Embedding's N(0, 1) would be sqrt(d) times larger). Loaded weights replace it.
        nn.init.normal_(self.embed.weight, std=embed_unit**-0.5)
        self.encoder = ENCODERS[encoder](**(encoder_conf or {}))
        if self.encoder.output_size() != att_unit:
            raise ValueError(f"att_unit {att_unit} != encoder output_size {self.encoder.output_size()}")
        self.decoder = nn.Linear(att_unit, len(self.punc_list))
        self.register_buffer("punc_weight", torch.tensor(weights), persistent=False)
        self.sentence_end_id = sentence_end_id
        self.ignore_id = ignore_id

    def forward(self, token_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """token_ids (B, U) long, lengths (B,) -> logits (B, U, num_punc); rows past a length are
        unspecified."""
        hidden, _ = self.encoder(self.embed(token_ids), lengths)
        return self.decoder(hidden)

    def loss(self, token_ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor):
        """Class-weighted cross entropy (``punc_weight``) summed over valid tokens, as FunASR's
        ``CTTransformer.nll``. labels (B, U) long (``ignore_id`` skipped). -> (summed loss, tokens)."""
        logits = self(token_ids, lengths)
        nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), weight=self.punc_weight,
                              reduction="none", ignore_index=self.ignore_id)
        valid = sequence_mask(lengths, token_ids.size(1)).reshape(-1)
        return nll.masked_fill(~valid, 0.0).sum(), valid.sum()
