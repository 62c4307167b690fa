"""Attention encoder-decoder (AED) with a CTC branch: FunASR's ``Conformer`` ASR model.

FunASR's ``Conformer`` model class is its ``Transformer`` class unchanged (the encoder is what
the config's ``encoder:`` names): encoder -> (CTC head, autoregressive attention decoder).
Inputs are features after LFR and CMVN (the data loader applies them). Submodule names
(encoder, decoder, ctc, specaug) follow FunASR, so its Conformer checkpoints load strictly.

Training loss (FunASR's ``Transformer.forward``):
    loss = ctc_weight * CTC + (1 - ctc_weight) * CE_label_smoothed(decoder([<s>] + y), y + [</s>])
Decoding lives in :mod:`funasr_lite.decode.aed_search` (greedy, beam search with CTC prefix
scores and LM shallow fusion); :meth:`decode_greedy` is the attention greedy search, used by
training's validation CER.
"""

import logging
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.losses.label_smoothing import LabelSmoothingLoss
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.paraformer.model import token_accuracy

logger = logging.getLogger(__name__)


def add_sos_eos(
    targets: torch.Tensor, lengths: torch.Tensor, sos: int, eos: int, ignore_id: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, L) targets padded with anything past lengths -> decoder input (B, L+1) = <s> y padded
    with </s>, decoder target (B, L+1) = y </s> padded with ignore_id (FunASR's add_sos_eos)."""
    batch, length = targets.shape
    valid = torch.arange(length, device=targets.device).unsqueeze(0) < lengths.unsqueeze(1)
    body = targets.masked_fill(~valid, eos)
    ys_in = torch.cat([body.new_full((batch, 1), sos), body], dim=1)
    ys_out = nn.functional.pad(targets.masked_fill(~valid, ignore_id), (0, 1), value=ignore_id)
    ys_out = ys_out.scatter(1, lengths.long().unsqueeze(1), eos)
    return ys_in, ys_out


class Conformer(nn.Module):
    """CTC-attention hybrid AED (FunASR's Transformer/Conformer model schema).

    The keyword arguments are FunASR's ``model_conf``; report_cer, report_wer, sym_space and
    sym_blank are accepted and ignored (FunASR ignores them too).
    """

    # build_model: this family has no CIF predictor.
    uses_predictor = False
    # decode: the output length is found token by token (decode.aed_search).
    autoregressive = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        vocab_size: int,
        specaug: Optional[nn.Module] = None,
        ctc: Optional[nn.Module] = None,
        ctc_weight: float = 0.5,
        interctc_weight: float = 0.0,
        ignore_id: int = -1,
        blank_id: int = 0,
        sos: int = 1,
        eos: int = 2,
        lsm_weight: float = 0.0,
        length_normalized_loss: bool = False,
        report_cer: bool = True,
        report_wer: bool = True,
        sym_space: str = "<space>",
        sym_blank: str = "<blank>",
        share_embedding: bool = False,
    ):
        super().__init__()
        if not 0.0 <= ctc_weight < 1.0:
            raise ValueError(f"ctc_weight must be in [0, 1) (1.0 would be a CTC-only model), got {ctc_weight}")
        if ctc_weight > 0.0 and ctc is None:
            raise ValueError("ctc_weight > 0 needs a CTC module")
        if interctc_weight != 0.0:
            raise NotImplementedError("interctc_weight (intermediate CTC) is not supported")
        if share_embedding:
            raise NotImplementedError("share_embedding is not supported for the attention decoder")
        self.specaug = specaug
        self.encoder = encoder
        self.decoder = decoder
        self.ctc = ctc if ctc_weight > 0.0 else None
        self.vocab_size = vocab_size
        self.ctc_weight = ctc_weight
        self.ignore_id = ignore_id
        self.blank_id = blank_id
        self.sos = sos
        self.eos = eos
        self.length_normalized_loss = length_normalized_loss
        self.criterion_att = LabelSmoothingLoss(vocab_size, ignore_id, lsm_weight, length_normalized_loss)

    def encode(self, feats: torch.Tensor, feats_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, input_size) -> (encoder_out (B, T', D), encoder_out_lens (B,)); SpecAugment
        only in training mode."""
        if self.specaug is not None and self.training:
            feats, feats_lengths = self.specaug(feats, feats_lengths)
        outputs = self.encoder(feats, feats_lengths)
        return outputs[0], outputs[1]

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """speech (B, T, D), text (B, L) padded with ignore_id -> (loss, stats, weight).

        stats: detached 0-d loss, loss_att, loss_ctc (0 without CTC), acc (decoder token
        accuracy, </s> included); weight: batch size, or target tokens + </s> with
        length_normalized_loss (as FunASR).
        """
        batch_size = speech.size(0)
        text = text[:, : int(text_lengths.max())]
        encoder_out, encoder_out_lens = self.encode(speech, speech_lengths)
        loss_ctc = encoder_out.new_zeros(())
        if self.ctc is not None:
            loss_ctc = self.ctc(encoder_out, encoder_out_lens, text, text_lengths)
        ys_in, ys_out = add_sos_eos(text, text_lengths, self.sos, self.eos, self.ignore_id)
        logits, _ = self.decoder(encoder_out, encoder_out_lens, ys_in, text_lengths + 1)
        loss_att = self.criterion_att(logits, ys_out)
        loss = self.ctc_weight * loss_ctc + (1.0 - self.ctc_weight) * loss_att
        stats = {
            "loss": loss.detach(),
            "loss_att": loss_att.detach(),
            "loss_ctc": loss_ctc.detach(),
            "acc": token_accuracy(logits.detach(), ys_out, self.ignore_id),
        }
        if self.length_normalized_loss:
            weight = (text_lengths + 1).sum()
        else:
            weight = torch.tensor(batch_size, device=loss.device)
        return loss, stats, weight

    @torch.no_grad()
    def attention_greedy(
        self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor, max_lengths: Optional[torch.Tensor] = None
    ) -> List[Dict]:
        """Batched attention greedy search over encoder output (B, T', D).

        At each step every unfinished utterance takes its decoder's best token among all but
        <blank> and <s>; it ends at </s>, or is ended with </s> after max_lengths[b] tokens
        (default: its encoder length - 1, as the beam search: FunASR's maxlenratio 0 caps the
        output at the encoder length). Returns one dict per utterance:
        token_ids (no </s>), score (sum of the chosen tokens' log-probs, </s> included).
        """
        batch = encoder_out.size(0)
        device = encoder_out.device
        if max_lengths is None:
            max_lengths = encoder_out_lens - 1
        memory_mask = sequence_mask(encoder_out_lens, encoder_out.size(1))
        banned = torch.zeros(self.vocab_size, dtype=torch.bool, device=device)
        for token in (self.blank_id, self.sos):
            if 0 <= token < self.vocab_size and token != self.eos:
                banned[token] = True
        tokens = torch.full((batch, 1), self.sos, dtype=torch.long, device=device)
        scores = encoder_out.new_zeros(batch, dtype=torch.float32)
        rows = torch.arange(batch, device=device)  # the utterances still searching
        cache = None
        outputs: List[List[int]] = [[] for _ in range(batch)]
        step = 0
        while rows.numel() > 0:
            logp, cache = self.decoder.forward_one_step(
                tokens[rows], encoder_out[rows], memory_mask[rows], cache
            )
            logp = logp.float().masked_fill(banned, float("-inf"))
            must_end = max_lengths[rows] <= step
            logp[must_end] = torch.where(
                torch.arange(self.vocab_size, device=device) == self.eos, logp[must_end], float("-inf")
            )
            best_logp, best = logp.max(dim=-1)
            scores[rows] += best_logp
            new_column = torch.full((batch, 1), self.eos, dtype=torch.long, device=device)
            new_column[rows, 0] = best
            tokens = torch.cat([tokens, new_column], dim=1)
            ended = best == self.eos
            keep = ~ended
            rows = rows[keep]
            cache = [layer_cache[keep] for layer_cache in cache]
            step += 1
        for b in range(batch):  # an utterance stops at its first </s>; later columns are </s> padding
            outputs[b] = [t for t in tokens[b, 1:].tolist() if t != self.eos]
        return [{"token_ids": outputs[b], "score": float(scores[b])} for b in range(batch)]

    @torch.no_grad()
    def decode_greedy(self, feats: torch.Tensor, feats_lengths: torch.Tensor) -> List[Dict]:
        """Encode, then :meth:`attention_greedy` (used by training's validation CER)."""
        encoder_out, encoder_out_lens = self.encode(feats, feats_lengths)
        return self.attention_greedy(encoder_out, encoder_out_lens)

__all__ = ["Conformer", "add_sos_eos"]
