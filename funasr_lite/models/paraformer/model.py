"""Paraformer: encoder -> CIF predictor -> (glancing sampler, training) -> NAR decoder.

Inputs are features after LFR and CMVN (the data loader applies them, like FunASR's frontend).
Submodule names (encoder, predictor, decoder, ctc, specaug) follow FunASR's Paraformer so released
checkpoints load with strict=True.
"""

import logging
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.losses.label_smoothing import LabelSmoothingLoss
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.paraformer.cif import CifPredictorV3
from funasr_lite.models.paraformer.sampler import glancing_sample

logger = logging.getLogger(__name__)


def append_token(targets: torch.Tensor, lengths: torch.Tensor, token: int, ignore_id: int) -> torch.Tensor:
    """Write `token` right after each sequence: (B, L) padded with ignore_id -> (B, L+1)."""
    extended = nn.functional.pad(targets, (0, 1), value=ignore_id)
    return extended.scatter(1, lengths.long().unsqueeze(1), token)


def token_accuracy(logits: torch.Tensor, targets: torch.Tensor, ignore_id: int) -> torch.Tensor:
    """Fraction of non-padding positions where argmax(logits) equals the target -> 0-d tensor."""
    valid = targets != ignore_id
    correct = (logits.argmax(-1) == targets) & valid
    return correct.sum().float() / valid.sum().clamp(min=1).float()


class Paraformer(nn.Module):
    """Paraformer ASR model.

    Loss = ctc_weight * CTC + (1 - ctc_weight) * c * CE + predictor_weight * MAE + mwer_weight * MWER,
    where c = mwer_ce_weight when MWER is on (the lambda of the paper's fine-tuning stage), else 1.
    """

    required_predictor: Optional[type] = None  # a subclass that needs a particular predictor class
    takes_hotwords = False  # SeacoParaformer, ContextualParaformer: decoding takes a HotwordContext

    def __init__(
        self,
        encoder: nn.Module,
        predictor: nn.Module,
        decoder: nn.Module,
        vocab_size: int,
        specaug: Optional[nn.Module] = None,
        ctc: Optional[nn.Module] = None,
        ctc_weight: float = 0.5,
        ignore_id: int = -1,
        blank_id: int = 0,
        sos: int = 1,
        eos: int = 2,
        lsm_weight: float = 0.0,
        length_normalized_loss: bool = False,
        predictor_weight: float = 0.0,
        predictor_bias: int = 0,
        sampling_ratio: float = 0.2,
        share_embedding: bool = False,
        use_1st_decoder_loss: bool = False,
        mwer_weight: float = 0.0,
        mwer_num_candidates: int = 4,
        mwer_ce_weight: float = 1.0,
        mwer_negatives: str = "swap",
    ):
        super().__init__()
        if ctc_weight > 0.0 and ctc is None:
            raise ValueError("ctc_weight > 0 needs a CTC module")
        if predictor_bias not in (0, 1):
            raise ValueError(f"predictor_bias must be 0 or 1, got {predictor_bias}")
        if self.required_predictor is not None and not isinstance(predictor, self.required_predictor):
            raise ValueError(f"{type(self).__name__} needs predictor {self.required_predictor.__name__}, "
                             f"got {type(predictor).__name__}")
        if use_1st_decoder_loss:
            logger.warning("use_1st_decoder_loss has no effect (FunASR 1.4 ignores it too)")
        self.specaug = specaug
        self.encoder = encoder
        self.predictor = predictor
        self.decoder = decoder
        self.ctc = ctc if ctc_weight > 0.0 else None
        self.vocab_size = vocab_size
        self.ctc_weight = ctc_weight
        self.ignore_id = ignore_id
        self.blank_id = blank_id
        self.sos = sos
        self.eos = eos
        self.length_normalized_loss = length_normalized_loss
        self.predictor_weight = predictor_weight
        self.predictor_bias = predictor_bias
        self.sampling_ratio = sampling_ratio
        self.share_embedding = share_embedding
        if share_embedding:
            self.decoder.embed = None
        self.mwer_weight = mwer_weight
        self.mwer_num_candidates = mwer_num_candidates
        self.mwer_ce_weight = mwer_ce_weight
        self.mwer_negatives = mwer_negatives
        self.criterion_att = LabelSmoothingLoss(vocab_size, ignore_id, lsm_weight, length_normalized_loss)

    # ------------------------------------------------------------------ building blocks
    def encode(self, feats: torch.Tensor, feats_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, input_size) -> (encoder_out (B, T', D), encoder_out_lens (B,)).

        SpecAugment is applied only in training mode.
        """
        if self.specaug is not None and self.training:
            feats, feats_lengths = self.specaug(feats, feats_lengths)
        outputs = self.encoder(feats, feats_lengths)
        return outputs[0], outputs[1]

    def calc_predictor(
        self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inference CIF: -> (acoustic_embeds (B, N, D), token_num (B,), alphas, peaks)."""
        mask = sequence_mask(encoder_out_lens, encoder_out.size(1))
        return self.predictor(encoder_out, mask)

    def decoder_log_probs(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        acoustic_embeds: torch.Tensor,
        token_lengths: torch.Tensor,
        context=None,
    ) -> torch.Tensor:
        """-> (B, N, V) log-probabilities of the NAR decoder. ``context``: hotwords, for the models
        that take them (SeacoParaformer); this one takes none."""
        if context is not None:
            raise ValueError(f"{type(self).__name__} takes no hotwords")
        logits = self.decoder(encoder_out, encoder_out_lens, acoustic_embeds, token_lengths)[0]
        return torch.log_softmax(logits, dim=-1)

    def embed_targets(self, token_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L, D) target embeddings for the sampler: decoder.embed, as FunASR,
        or the output projection's rows with share_embedding."""
        if self.share_embedding:
            return self.decoder.output_layer.weight[token_ids]
        return self.decoder.embed(token_ids)

    # ------------------------------------------------------------------ training
    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """speech (B, T, D), text (B, L) padded with ignore_id -> (loss, stats, weight).

        stats holds detached 0-d tensors loss, loss_att, loss_ctc, loss_pre, loss_mwer, acc
        (a disabled branch reports 0); weight is the batch size, or the number of target tokens
        with length_normalized_loss, for averaging across workers.
        """
        text = text[:, : int(text_lengths.max())]
        encoder_out, encoder_out_lens = self.encode(speech, speech_lengths)
        return self.losses(encoder_out, encoder_out_lens, text, text_lengths)

    def losses(self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor, text: torch.Tensor,
               text_lengths: torch.Tensor, ctc_input: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
               **branch_options) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """The training losses from the encoder output (see :meth:`forward`). ``ctc_input``: what
        the CTC branch reads instead of the encoder output (a streaming model's frames taken back
        out of its chunk domain); ``branch_options`` go to :meth:`attention_branch`."""
        batch_size = encoder_out.size(0)
        zero = encoder_out.new_zeros(())

        loss_ctc = zero
        if self.ctc is not None:
            ctc_out, ctc_lens = ctc_input if ctc_input is not None else (encoder_out, encoder_out_lens)
            loss_ctc = self.ctc(ctc_out, ctc_lens, text, text_lengths)

        use_mwer = self.mwer_weight > 0.0
        branch = self.attention_branch(encoder_out, encoder_out_lens, text, text_lengths, first_pass_grad=use_mwer,
                                       **branch_options)
        targets, target_lengths, first_logits = branch["targets"], branch["target_lengths"], branch["first_logits"]
        loss_att, acc, loss_pre = branch["loss_att"], branch["acc"], branch["loss_pre"]

        loss_mwer = zero
        mwer_stats: Dict[str, torch.Tensor] = {}
        if use_mwer:
            # Imported here: only the MWER fine-tuning stage needs it.
            from funasr_lite.models.losses.mwer import mwer_loss

            loss_mwer, mwer_stats = mwer_loss(
                torch.log_softmax(first_logits, dim=-1), targets, target_lengths,
                num_candidates=self.mwer_num_candidates, negatives=self.mwer_negatives,
            )

        ce_scale = self.mwer_ce_weight if use_mwer else 1.0
        loss = (
            self.ctc_weight * loss_ctc
            + (1.0 - self.ctc_weight) * ce_scale * loss_att
            + self.predictor_weight * loss_pre
            + self.mwer_weight * loss_mwer
        )
        auxiliary = self.auxiliary_losses(encoder_out, branch["encoder_mask"], target_lengths)
        for weight, value in auxiliary.values():
            loss = loss + weight * value
        stats = {
            "loss": loss.detach(),
            "loss_att": loss_att.detach(),
            "loss_ctc": loss_ctc.detach(),
            "loss_pre": loss_pre.detach(),
            "loss_mwer": loss_mwer.detach(),
            "acc": acc,
        }
        stats.update({name: value.detach() for name, (_, value) in auxiliary.items()})
        for key, value in mwer_stats.items():
            stats[f"mwer_{key}"] = value.detach() if torch.is_tensor(value) else torch.tensor(float(value))
        if self.length_normalized_loss:
            weight = target_lengths.sum()
        else:
            weight = torch.tensor(batch_size, device=loss.device)
        return loss, stats, weight

    def attention_branch(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        first_pass_grad: bool = False,
        alpha_mask: Optional[torch.Tensor] = None,
        chunk_mask_fn=None,
    ) -> Dict[str, torch.Tensor]:
        """CIF with target lengths, glancing sampler, decoder: FunASR's ``_calc_att_loss``.

        Returns targets and target_lengths (</s> appended with predictor_bias), encoder_mask,
        acoustic_embeds, token_num, first_logits (the sampler's first pass; with gradients only
        when ``first_pass_grad``, as MWER needs), logits, loss_att, acc, loss_pre.
        A streaming model's SCAMA training adds ``alpha_mask`` (B, T), the frames CIF counts, and
        ``chunk_mask_fn(alphas, target_lengths)`` -> the decoder's (B, L, T) ``chunk_mask``.
        """
        targets, target_lengths = text, text_lengths
        if self.predictor_bias == 1:
            targets = append_token(text, text_lengths, self.eos, self.ignore_id)
            target_lengths = text_lengths + 1

        encoder_mask = sequence_mask(encoder_out_lens, encoder_out.size(1))
        masked = {} if alpha_mask is None else {"alpha_mask": alpha_mask}
        acoustic_embeds, token_num, alphas, _ = self.predictor(encoder_out, encoder_mask, target_lengths=target_lengths,
                                                               **masked)
        extra = self.decoder_kwargs(encoder_out.size(0))
        if chunk_mask_fn is not None:
            extra["chunk_mask"] = chunk_mask_fn(alphas.detach(), target_lengths)

        if self.sampling_ratio > 0.0:
            # The first pass only picks glance positions, unless MWER needs its gradients.
            with torch.set_grad_enabled(first_pass_grad and torch.is_grad_enabled()):
                first_logits = self.decoder(encoder_out, encoder_out_lens, acoustic_embeds, target_lengths,
                                            **extra)[0]
            target_embeds = self.embed_targets(targets.masked_fill(targets == self.ignore_id, 0))
            semantic_embeds, _ = glancing_sample(
                acoustic_embeds, target_embeds, first_logits.detach().argmax(-1), targets,
                self.sampling_ratio, self.ignore_id,
            )
            logits = self.decoder(encoder_out, encoder_out_lens, semantic_embeds, target_lengths, **extra)[0]
        else:
            logits = self.decoder(encoder_out, encoder_out_lens, acoustic_embeds, target_lengths, **extra)[0]
            first_logits = logits
        return {
            "targets": targets, "target_lengths": target_lengths, "encoder_mask": encoder_mask,
            "acoustic_embeds": acoustic_embeds, "token_num": token_num, "first_logits": first_logits,
            "logits": logits, "loss_att": self.criterion_att(logits, targets),
            "acc": token_accuracy(first_logits.detach(), targets, self.ignore_id),
            "loss_pre": self.count_loss(target_lengths, token_num),
        }

    def decoder_kwargs(self, batch: int) -> Dict[str, torch.Tensor]:
        """Extra decoder inputs of a training step (ContextualParaformer: the hotword embeddings)."""
        return {}

    def count_loss(self, target_lengths: torch.Tensor, token_num: torch.Tensor) -> torch.Tensor:
        """FunASR's mae_loss: sum |n - n_hat| over the batch, / B, or / sum n with length_normalized_loss."""
        target_float = target_lengths.to(token_num.dtype)
        return (target_float - token_num).abs().sum() / (
            target_float.sum() if self.length_normalized_loss else target_lengths.size(0)
        )

    def auxiliary_losses(
        self, encoder_out: torch.Tensor, encoder_mask: torch.Tensor, target_lengths: torch.Tensor
    ) -> Dict[str, Tuple[float, torch.Tensor]]:
        """Losses a subclass adds to the total: {stats name: (weight, 0-d loss)}. None here."""
        return {}

    # ------------------------------------------------------------------ inference
    # Timestamps are read on predictor frames of encoder_frame / timestamp_upsample.
    timestamp_upsample = 1

    def timestamp_signals(
        self,
        encoder_out: torch.Tensor,
        encoder_out_lens: torch.Tensor,
        token_num: torch.Tensor,
        alphas: torch.Tensor,
        peaks: torch.Tensor,
        source: str = "model",
    ) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """Per utterance, the (alphas, peaks) that timestamps are read from, as (T,) CPU float tensors.

        Paraformer: the CIF's own, cut to the utterance's encoder frames plus the tail frame.
        source "cif" asks for these CIF signals from any subclass (source "model": its own).
        """
        extra_frames = alphas.size(1) - encoder_out.size(1)  # 1 when the predictor appended a tail
        frames = [int(n) + extra_frames for n in encoder_out_lens.tolist()]
        return [(alphas[b, :n].float().cpu(), peaks[b, :n].float().cpu()) for b, n in enumerate(frames)]

    @torch.no_grad()
    def decode_greedy(self, feats: torch.Tensor, feats_lengths: torch.Tensor,
                      timestamp_source: str = "model", context=None) -> List[Dict]:
        """Greedy decoding, one dict per utterance.

        Each dict: token_ids (list of int, <blank>/<s>/</s> removed), score (float, sum of the
        per-position max log-probs), token_num (int, CIF length), alphas and peaks ((T'+1,) float
        tensors on the CPU, cut to the utterance's encoder length plus the tail frame if any).
        """
        encoder_out, encoder_out_lens = self.encode(feats, feats_lengths)
        acoustic_embeds, token_num, alphas, peaks = self.calc_predictor(encoder_out, encoder_out_lens)
        token_lengths = token_num.round().long()
        if acoustic_embeds.size(1) > 0:
            log_probs = self.decoder_log_probs(encoder_out, encoder_out_lens, acoustic_embeds, token_lengths,
                                               context=context)
            best_log_probs, best_ids = log_probs.max(dim=-1)
        dropped = {self.blank_id, self.sos, self.eos}
        signals = self.timestamp_signals(encoder_out, encoder_out_lens, token_lengths, alphas, peaks,
                                         source=timestamp_source)
        results = []
        for index in range(feats.size(0)):
            length = int(token_lengths[index])
            if length > 0:
                ids = best_ids[index, :length].tolist()
                score = float(best_log_probs[index, :length].sum())
            else:
                ids, score = [], 0.0
            results.append({
                "token_ids": [token for token in ids if token not in dropped],
                "score": score,
                "token_num": length,
                "alphas": signals[index][0],
                "peaks": signals[index][1],
            })
        return results


class BiCifParaformer(Paraformer):
    """FunASR's BiCifParaformer: Paraformer whose CifPredictorV3 adds an upsampled second CIF head.

    Text is decoded exactly as by Paraformer; timestamps come from the second head's weights,
    rescaled to the CIF token count (`CifPredictorV3.upsampled_timestamp_signals`), on frames of
    encoder_frame / upsample_times. Training adds FunASR's ``loss_pre2``: the MAE between the
    target count and the second head's weight sum, weighted 0.5 * predictor_weight.
    """

    required_predictor = CifPredictorV3

    @property
    def timestamp_upsample(self) -> int:
        return self.predictor.upsample_times

    def auxiliary_losses(self, encoder_out, encoder_mask, target_lengths):
        token_num2 = self.predictor.upsampled_alphas(encoder_out, encoder_mask).sum(-1)
        return {"loss_pre2": (0.5 * self.predictor_weight, self.count_loss(target_lengths, token_num2))}

    def timestamp_signals(self, encoder_out, encoder_out_lens, token_num, alphas, peaks, source="model"):
        """Per utterance, (us_alphas, us_peaks) cut to encoder frames x upsample_times."""
        if source == "cif":
            return super().timestamp_signals(encoder_out, encoder_out_lens, token_num, alphas, peaks)
        mask = sequence_mask(encoder_out_lens, encoder_out.size(1))
        us_alphas, us_peaks = self.predictor.upsampled_timestamp_signals(encoder_out, mask, token_num)
        upsample = self.predictor.upsample_times
        return [(us_alphas[b, : n * upsample].float().cpu(), us_peaks[b, : n * upsample].float().cpu())
                for b, n in enumerate(encoder_out_lens.tolist())]
