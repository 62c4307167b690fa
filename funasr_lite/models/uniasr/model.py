"""FunASR's ``UniASR`` (the seed card's 2-pass models): two SCAMA passes over one utterance.

Pass 1: ``encoder`` (SANMEncoderChunkOpt) -> ``predictor`` (CIF, no tail) -> ``decoder``
(FsmnDecoderSCAMAOpt, autoregressive). Pass 2: the features and pass 1's frames (taken back out
of its chunk domain) concatenated, ``stride_conv`` (Conv1dSubsampling), ``encoder2`` ->
``predictor2`` -> ``decoder2``. Decoding modes (FunASR's ``decoding_model``): ``fast`` = pass 1
at chunk configuration 0; ``normal`` = pass 2 at configuration 0; ``offline`` = pass 2 at
configuration 1. Each pass gives its encoder output in the chunk domain, the CIF embeddings
(round(sum of alphas) rows), the alphas and the SCAMA cross-attention mask the decoder reads.

The passes equal funasr's ``encode``, ``encode2`` and ``calc_predictor_mask[2]`` on the same
weights; :meth:`UniASR.decode` runs FunASR's BeamSearchScama (``search.py``) on a pass;
:meth:`UniASR.forward` gives FunASR's training losses of both passes.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.encoders.sanm import SANMEncoderChunkOpt
from funasr_lite.models.losses.label_smoothing import LabelSmoothingLoss
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.modules.scama import ChunkPlan, cross_attention_mask, frame_alignments, remove_chunk
from funasr_lite.models.modules.subsampling import Conv1dSubsampling
from funasr_lite.models.paraformer.cif import CifPredictorV2
from funasr_lite.models.paraformer.model import append_token, token_accuracy
from funasr_lite.models.uniasr.decoder import FsmnDecoderSCAMAOpt
from funasr_lite.models.uniasr.search import ScamaHypothesis, scama_beam_search

MODES = {"fast": (1, 0), "normal": (2, 0), "offline": (2, 1)}  # decoding_model -> (pass, chunk configuration)


@dataclass
class PassOutput:
    """What one pass gives its decoder."""

    encoder_out: torch.Tensor  # (B, Tc, D) chunk domain
    encoder_lens: torch.Tensor
    embeds: torch.Tensor  # (B, N, D) CIF embeddings, N = round(max token count)
    token_num: torch.Tensor  # (B,) float: the alpha sums
    alphas: torch.Tensor  # (B, Tc)
    scama_mask: torch.Tensor  # (B, floor(token count), Tc) 0/1
    plan: ChunkPlan
    masked_out: Optional[torch.Tensor] = None  # encoder_out with the FSMN pad frames zeroed (what CIF reads)


class UniASR(nn.Module):
    """See the module docstring. Submodule names are FunASR's (``encoder``, ``encoder2``,
    ``decoder``, ``decoder2``, ``predictor``, ``predictor2``, ``stride_conv``)."""

    uniasr = True  # decoded one utterance at a time by decode() (Speech2Text dispatches on it)
    ctc = None

    def __init__(self, encoder: SANMEncoderChunkOpt, decoder: FsmnDecoderSCAMAOpt, predictor: CifPredictorV2,
                 encoder2: SANMEncoderChunkOpt, decoder2: FsmnDecoderSCAMAOpt, predictor2: CifPredictorV2,
                 stride_conv: Conv1dSubsampling, vocab_size: int, specaug: Optional[nn.Module] = None,
                 ignore_id: int = -1, blank_id: int = 0, sos: int = 1, eos: int = 2, lsm_weight: float = 0.0,
                 length_normalized_loss: bool = False, predictor_weight: float = 0.0, predictor2_weight: float = 0.0,
                 loss_weight_model1: float = 0.5, decoder_attention_chunk_type: str = "chunk",
                 decoder_attention_chunk_type2: str = "chunk"):
        super().__init__()
        for name, value in (("decoder_attention_chunk_type", decoder_attention_chunk_type),
                            ("decoder_attention_chunk_type2", decoder_attention_chunk_type2)):
            if value != "chunk":
                raise NotImplementedError(f"UniASR: {name}={value!r} (only 'chunk', FunASR's)")
        for name, predictor_ in (("predictor", predictor), ("predictor2", predictor2)):
            if predictor_.tail_threshold > 0.0:
                raise ValueError(f"UniASR: {name}_conf.tail_threshold={predictor_.tail_threshold}: FunASR's UniASR "
                                 "fails with a CIF tail; set it to 0")
        self.encoder, self.decoder, self.predictor = encoder, decoder, predictor
        self.encoder2, self.decoder2, self.predictor2 = encoder2, decoder2, predictor2
        self.stride_conv, self.specaug = stride_conv, specaug
        self.vocab_size, self.ignore_id, self.blank_id, self.sos, self.eos = vocab_size, ignore_id, blank_id, sos, eos
        self.lsm_weight, self.length_normalized_loss = lsm_weight, length_normalized_loss
        self.predictor_weight, self.predictor2_weight = predictor_weight, predictor2_weight
        self.loss_weight_model1 = loss_weight_model1
        self.criterion_att = LabelSmoothingLoss(vocab_size, ignore_id, lsm_weight, length_normalized_loss)

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor, index: int = 0
               ) -> Tuple[torch.Tensor, torch.Tensor, ChunkPlan]:
        """Pass 1's encoder (FunASR's ``encode``): -> chunk-domain output, lengths, plan."""
        if self.specaug is not None and self.training:
            feats, lengths = self.specaug(feats, lengths)
        return self.encoder.forward_scama(feats, lengths, index)

    def encode2(self, encoder_out: torch.Tensor, encoder_lens: torch.Tensor, plan: ChunkPlan, feats: torch.Tensor,
                index: int = 0) -> Tuple[torch.Tensor, torch.Tensor, ChunkPlan]:
        """Pass 2's encoder (FunASR's ``encode2``): pass 1's frames out of the chunk domain, beside the
        features, through the stride conv, then encoder2."""
        frames, frame_lens = remove_chunk(encoder_out, encoder_lens, plan)
        joined = torch.cat([feats[:, : frames.size(1)], frames], dim=-1)
        strided, strided_lens = self.stride_conv(joined, frame_lens)
        return self.encoder2.forward_scama(strided, strided_lens, index)

    def pass_output(self, which: int, encoder_out: torch.Tensor, encoder_lens: torch.Tensor, plan: ChunkPlan,
                    target_lengths: Optional[torch.Tensor] = None) -> PassOutput:
        """FunASR's ``calc_predictor_mask`` (which 1) / ``calc_predictor_mask2`` (which 2)."""
        predictor = self.predictor if which == 1 else self.predictor2
        batch = encoder_out.size(0)
        shifted = encoder_out * plan.tensor("mask_shift", encoder_out, batch)
        mask = sequence_mask(encoder_lens, encoder_out.size(1))
        alpha_mask = plan.tensor("mask_predictor", encoder_out, batch)[..., 0]
        embeds, token_num, alphas, _ = predictor(shifted, mask, target_lengths=target_lengths, alpha_mask=alpha_mask)
        alignments = frame_alignments(alphas, encoder_lens, self.training)
        scama = cross_attention_mask(alignments, encoder_lens, plan, target_lengths, self.training, encoder_out.dtype)
        return PassOutput(encoder_out, encoder_lens, embeds, token_num, alphas, scama, plan, shifted)

    def passes(self, feats: torch.Tensor, lengths: torch.Tensor, mode: str = "normal") -> PassOutput:
        """The pass a decoding mode reads (``fast``, ``normal``, ``offline``; MODES)."""
        if mode not in MODES:
            raise ValueError(f"decoding mode {mode!r}: choose one of {', '.join(MODES)}")
        which, index = MODES[mode]
        encoder_out, encoder_lens, plan = self.encode(feats, lengths, index)
        if which == 2:
            encoder_out, encoder_lens, plan = self.encode2(encoder_out, encoder_lens, plan, feats, index)
        return self.pass_output(which, encoder_out, encoder_lens, plan)

    @torch.no_grad()
    def decode(self, feats: torch.Tensor, lengths: torch.Tensor, mode: str = "normal", beam_size: int = 5,
               token_num_relax: int = 5) -> List[ScamaHypothesis]:
        """One utterance (batch 1, as FunASR) in ``mode`` (fast | normal | offline) -> the ended
        hypotheses, best first; the search stops at ``int(CIF count) + token_num_relax`` tokens. A
        pass whose CIF fires nothing gives none (FunASR fails there)."""
        if feats.size(0) != 1:
            raise ValueError(f"UniASR decodes one utterance at a time (batch {feats.size(0)})")
        out = self.passes(feats, lengths, mode)
        if out.scama_mask.size(1) == 0 or out.embeds.size(1) == 0:
            return []
        decoder = self.decoder if mode == "fast" else self.decoder2
        maxlen = int(float(out.token_num.sum()) + token_num_relax)
        return scama_beam_search(decoder, out.encoder_out[0], out.scama_mask, out.embeds, beam_size, maxlen,
                                 self.sos, self.eos)

    def decode_greedy(self, feats: torch.Tensor, lengths: torch.Tensor, **_) -> List[Dict[str, Any]]:
        """The trainer's validation decode: each utterance in ``normal`` mode with beam 1."""
        results = []
        for index in range(feats.size(0)):
            length = int(lengths[index])
            hyps = self.decode(feats[index:index + 1, :length], lengths[index:index + 1], "normal", 1)
            ids = [t for t in hyps[0].yseq[1:-1] if t != self.blank_id] if hyps else []
            results.append({"token_ids": ids, "score": float(hyps[0].score) if hyps else 0.0, "token_num": len(ids),
                            "alphas": None, "peaks": None})
        return results

    # ------------------------------------------------------------------ training
    def _pass_losses(self, which: int, encoder_out, encoder_lens, plan, text, text_lengths):
        """FunASR's ``_calc_att_predictor_loss[2]``: CIF scaled to the target length (+</s>), the
        SCAMA mask of its alignment, the decoder teacher-forced on <s> + text with the CIF embeddings
        -> (loss_att, acc, loss_pre)."""
        targets = append_token(text, text_lengths, self.eos, self.ignore_id)  # text + </s>
        inputs = torch.cat([text.new_full((text.size(0), 1), self.sos),
                            text.masked_fill(text == self.ignore_id, self.eos)], dim=1)  # <s> + text, </s>-padded
        in_lengths = text_lengths + 1
        out = self.pass_output(which, encoder_out, encoder_lens, plan, target_lengths=in_lengths)
        decoder = self.decoder if which == 1 else self.decoder2
        logits, _ = decoder(out.masked_out, encoder_lens, inputs, in_lengths, out.scama_mask, out.embeds)
        loss_att = self.criterion_att(logits, targets)
        acc = token_accuracy(logits.detach(), targets, self.ignore_id)
        target_float = in_lengths.to(out.token_num.dtype)
        loss_pre = (target_float - out.token_num).abs().sum() / (
            target_float.sum() if self.length_normalized_loss else in_lengths.size(0))
        return loss_att, acc, loss_pre

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, text: torch.Tensor,
                text_lengths: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """FunASR's UniASR.forward: one chunk configuration drawn per step (as FunASR), pass 1's
        losses (weight ``loss_weight_model1``) and pass 2's; -> (loss, stats, weight)."""
        text = text[:, : int(text_lengths.max())]
        index = self.encoder.choose_config(self.training)
        if self.specaug is not None and self.training:
            speech, speech_lengths = self.specaug(speech, speech_lengths)
        encoder_out, encoder_lens, plan = self.encoder.forward_scama(speech, speech_lengths, index)
        stats: Dict[str, torch.Tensor] = {}
        loss1 = encoder_out.new_zeros(())
        if self.loss_weight_model1 > 0.0:
            loss_att, acc, loss_pre = self._pass_losses(1, encoder_out, encoder_lens, plan, text, text_lengths)
            loss1 = loss_att + loss_pre * self.predictor_weight
            stats.update(loss_att=loss_att.detach(), acc=acc, loss_pre=loss_pre.detach())
        loss2 = loss1
        if self.loss_weight_model1 < 1.0:
            encoder2_out, encoder2_lens, plan2 = self.encode2(encoder_out, encoder_lens, plan, speech, index)
            loss_att, acc, loss_pre = self._pass_losses(2, encoder2_out, encoder2_lens, plan2, text, text_lengths)
            loss2 = loss_att + loss_pre * self.predictor2_weight
            stats.update(loss_att2=loss_att.detach(), acc2=acc, loss_pre2=loss_pre.detach())
        loss = loss1 * self.loss_weight_model1 + loss2 * (1 - self.loss_weight_model1)
        stats.update(loss1=loss1.detach(), loss2=loss2.detach(), loss=loss.detach())
        weight = (text_lengths + 1).sum() if self.length_normalized_loss else torch.tensor(speech.size(0))
        return loss, stats, weight


def _conf(config: Dict[str, Any], key: str) -> Dict[str, Any]:
    return dict(config.get(key) or {})


def build_uniasr(config: Dict[str, Any], input_size: int, vocab_size: int) -> UniASR:
    """A UniASR from a FunASR config.yaml dict (FunASR's sections: encoder, encoder2, decoder,
    decoder2, predictor, predictor2, stride_conv_conf, model_conf)."""
    from funasr_lite.models import ConfigError, check_conf

    for key in ("encoder", "encoder2"):
        if config.get(key) not in ("SANMEncoderChunkOpt", "sanm_chunk_opt"):
            raise ConfigError(f"UniASR: {key}={config.get(key)!r} (only SANMEncoderChunkOpt)")
    for key in ("decoder", "decoder2"):
        if config.get(key) not in ("FsmnDecoderSCAMAOpt", "fsmn_scama_opt"):
            raise ConfigError(f"UniASR: {key}={config.get(key)!r} (only FsmnDecoderSCAMAOpt)")
    for key in ("predictor", "predictor2"):
        if config.get(key) not in ("CifPredictorV2", "cif_predictor_v2"):
            raise ConfigError(f"UniASR: {key}={config.get(key)!r} (only CifPredictorV2)")
    if not config.get("stride_conv_conf"):
        raise ConfigError("UniASR needs stride_conv_conf (kernel_size, stride, pad)")
    encoder = SANMEncoderChunkOpt(input_size=input_size, **check_conf("encoder_conf", SANMEncoderChunkOpt,
                                                                      _conf(config, "encoder_conf"), ("input_size",)))
    width = encoder.output_size()
    stride_conv = Conv1dSubsampling(idim=input_size + width, odim=input_size + width,
                                    **check_conf("stride_conv_conf", Conv1dSubsampling, _conf(config, "stride_conv_conf"),
                                                 ("idim", "odim")))
    encoder2 = SANMEncoderChunkOpt(input_size=stride_conv.output_size(), **check_conf(
        "encoder2_conf", SANMEncoderChunkOpt, _conf(config, "encoder2_conf"), ("input_size",)))
    decoders = [FsmnDecoderSCAMAOpt(vocab_size=vocab_size, encoder_output_size=enc.output_size(), **check_conf(
        key, FsmnDecoderSCAMAOpt, _conf(config, key), ("vocab_size", "encoder_output_size")))
        for key, enc in (("decoder_conf", encoder), ("decoder2_conf", encoder2))]
    predictors = [CifPredictorV2(**dict({"tail_threshold": 0.0}, **check_conf(key, CifPredictorV2, _conf(config, key))))
                  for key in ("predictor_conf", "predictor2_conf")]
    model_conf = _conf(config, "model_conf")
    # FunASR reads these but never uses them (no CTC in UniASR)
    unused = ("ctc_weight", "ctc2_weight", "predictor_bias", "predictor2_bias", "share_embedding")
    # training switches FunASR has and we have not built: only their defaults
    for key, default in (("encoder1_encoder2_joint_training", True), ("enable_maas_finetune", False),
                         ("freeze_encoder2", False)):
        if model_conf.get(key, default) != default:
            raise ConfigError(f"UniASR: model_conf.{key}={model_conf[key]!r} is not supported (only {default!r})")
    kept = {key: value for key, value in model_conf.items() if key not in unused + (
        "encoder1_encoder2_joint_training", "enable_maas_finetune", "freeze_encoder2")}
    kept = check_conf("model_conf", UniASR, kept, ("encoder", "decoder", "predictor", "encoder2", "decoder2",
                                                    "predictor2", "stride_conv", "vocab_size", "specaug"))
    return UniASR(encoder, decoders[0], predictors[0], encoder2, decoders[1], predictors[1], stride_conv, vocab_size,
                  **kept)


__all__ = ["UniASR", "PassOutput", "MODES", "build_uniasr"]
