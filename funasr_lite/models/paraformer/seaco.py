"""SeACo-Paraformer (FunASR's ``SeacoParaformer``, arXiv 2308.03266): BiCifParaformer plus hotword
biasing.

Hotwords (token-id sequences, the last one ``<s>``: "no hotword") are embedded with the ASR
decoder's token embedding and a 2-layer LSTM (``bias_encoder``; the output at each hotword's last
token). A SAN-M decoder without embedding or output layer (``seaco_decoder``) attends from the CIF
embeddings and from the ASR decoder's hidden states to the hotwords; the sum of the two goes
through ``hotword_output_layer`` to a distribution over the vocabulary whose ``NO_BIAS`` class
means "no hotword here". Decoding (FunASR's ``_seaco_decode_with_ASF``): with more than
``nfilter`` hotwords, attention-score filtering keeps the ``nfilter`` the seaco decoder's last
layer attends to most (plus ``<s>``); where the bias head's argmax is not NO_BIAS its log-probs
replace the decoder's (``seaco_weight`` 1: a switch; below 1 a blend).

Differences from FunASR, on purpose (docs/hotwords.md): the filter is chosen per utterance (FunASR
uses the batch's first utterance for all), so a batched decode equals decoding each utterance alone;
``seaco_weight`` and ``nfilter`` are decoding options (FunASR fixes them at 1.0 and 50).
"""

import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from funasr_lite.data.hotword_sampling import MIN_LENGTH, error_span, hotword_batch, spans_of_labels
from funasr_lite.models.losses.label_smoothing import LabelSmoothingLoss
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.paraformer.model import BiCifParaformer

# The seaco decoder layer whose source-attention weights rank the hotwords (FunASR's forward_asf6).
ASF_LAYER = 5


def pad_hotwords(hotwords: Sequence[Sequence[int]], device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists -> (ids (N, L) padded with 0, lengths (N,)); each list must be non-empty."""
    if not hotwords or any(len(word) == 0 for word in hotwords):
        raise ValueError("hotwords must be non-empty token-id lists")
    lengths = torch.tensor([len(word) for word in hotwords], device=device)
    pad = torch.zeros(len(hotwords), int(lengths.max()), dtype=torch.long, device=device)
    for row, word in enumerate(hotwords):
        pad[row, : len(word)] = torch.tensor(list(word), dtype=torch.long)
    return pad, lengths


@dataclass
class HotwordContext:
    """Hotwords ready for decoding: embeddings (N, D) (the last is ``<s>``), the filter size and
    the bias weight. Made once per hotword list by :meth:`SeacoParaformer.hotword_context`, which
    also projects the embeddings through each seaco decoder layer's source attention
    (``projected``: (N, 2D) per layer), so no utterance projects the list again; the filter and
    the two attention passes take rows of these (a row's projection is its own)."""

    embeddings: torch.Tensor
    nfilter: int = 50
    seaco_weight: float = 1.0
    projected: Optional[List[torch.Tensor]] = None

    @property
    def size(self) -> int:
        return int(self.embeddings.size(0))


class SeacoParaformer(BiCifParaformer):
    """BiCifParaformer + bias encoder + seaco decoder + hotword output layer (FunASR names).

    Loss (FunASR): loss_seaco (the bias head against ``seaco_label_pad``: NO_BIAS except on the
    utterance's own hotword span) + ``seaco_weight`` * loss_att when ``train_decoder``; the CIF
    count, timestamp-head and CTC losses are not used (as in FunASR). ``seaco_no_bias_weight``
    (ours; 1.0 is FunASR's loss) scales the positions labelled NO_BIAS: about three labels in four
    are NO_BIAS, and on small data a head that always predicts it is a cheap minimum (RESULTS.md).
    ``seaco_error_spans`` (ours; 0 is FunASR's sampling): the share of utterances whose training
    span is redrawn, before the loss, to cover a token the decoder gets wrong (teacher-forced argmax
    of this very forward pass): a head trained on FunASR's random spans of a small corpus learns to
    copy the decoder's own state, which is already right on most of them, instead of the list.
    """

    takes_hotwords = True

    def __init__(
        self,
        *args,
        seaco_decoder: Optional[nn.Module] = None,
        inner_dim: int = 256,
        bias_encoder_type: str = "lstm",
        bias_encoder_dropout_rate: float = 0.0,
        bias_encoder_bid: bool = False,
        seaco_lsm_weight: float = 0.0,
        seaco_length_normalized_loss: bool = True,
        train_decoder: bool = True,
        seaco_weight: float = 0.01,
        NO_BIAS: int = 8377,  # noqa: N803 (FunASR's config key)
        seaco_no_bias_weight: float = 1.0,
        seaco_error_spans: float = 0.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if bias_encoder_type != "lstm":
            raise ValueError(f"bias_encoder_type={bias_encoder_type!r}: only lstm works (FunASR's 'mean' crashes)")
        if seaco_decoder is None:
            raise ValueError("SeacoParaformer needs seaco_decoder and seaco_decoder_conf")
        if self.predictor_bias != 1:
            raise ValueError("SeacoParaformer needs predictor_bias 1 (FunASR's loss is undefined otherwise)")
        embed = getattr(self.decoder, "embed", None)
        if embed is None or embed[0].embedding_dim != inner_dim:
            raise ValueError(f"inner_dim={inner_dim} must equal the decoder's width (the bias encoder reads "
                             "decoder.embed)")
        if not 0 <= NO_BIAS < self.vocab_size:
            raise ValueError(f"NO_BIAS={NO_BIAS} is not a token id (vocabulary of {self.vocab_size}); set "
                             "model_conf.NO_BIAS (FunASR's default 8377 fits its 8404-token vocabulary only)")
        self.inner_dim = inner_dim
        self.bias_encoder = nn.LSTM(inner_dim, inner_dim, 2, batch_first=True, dropout=bias_encoder_dropout_rate,
                                    bidirectional=bias_encoder_bid)
        self.lstm_proj = nn.Linear(inner_dim * 2, inner_dim) if bias_encoder_bid else None
        self.seaco_decoder = seaco_decoder
        self.hotword_output_layer = nn.Linear(inner_dim, self.vocab_size)
        self.criterion_seaco = LabelSmoothingLoss(self.vocab_size, self.ignore_id, seaco_lsm_weight,
                                                  seaco_length_normalized_loss)
        self.train_decoder = train_decoder
        self.seaco_weight = seaco_weight
        self.NO_BIAS = NO_BIAS
        if seaco_no_bias_weight <= 0:
            raise ValueError(f"seaco_no_bias_weight must be > 0, got {seaco_no_bias_weight}")
        self.seaco_no_bias_weight = seaco_no_bias_weight
        if not 0.0 <= seaco_error_spans <= 1.0:
            raise ValueError(f"seaco_error_spans must be in [0, 1], got {seaco_error_spans}")
        self.seaco_error_spans = seaco_error_spans

    def _error_spans(self, hidden: torch.Tensor, text: torch.Tensor, text_lengths: torch.Tensor,
                     labels: torch.Tensor, rng=random) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``seaco_error_spans``: each utterance, with that probability and when the decoder's
        teacher-forced argmax is wrong somewhere in it, gets one span of 2-8 tokens around a wrong
        token drawn at random; the others keep the data loader's spans (read back off ``labels``).
        Draws come from Python's global generator, as the data loader's (checkpointed: a resumed run
        draws alike). -> the new (hotword_pad, hotword_lengths, seaco_label_pad)."""
        with torch.no_grad():
            decoded = self.decoder.output_layer(hidden[:, : text.size(1)]).argmax(-1)
        valid = sequence_mask(text_lengths, text.size(1))
        wrong = (decoded != text) & valid
        spans = []
        for row, length in enumerate(text_lengths.tolist()):
            positions = wrong[row].nonzero().flatten().tolist()
            if length >= MIN_LENGTH and positions and rng.random() < self.seaco_error_spans:
                spans.append(error_span(positions, length, rng))
            else:
                spans.append(spans_of_labels(labels[row, :length].tolist(), self.NO_BIAS))
        batch = hotword_batch(text.cpu(), text_lengths.cpu(), spans, self.sos, self.NO_BIAS)
        device = hidden.device
        return (batch["hotword_pad"].to(device), batch["hotword_lengths"].to(device),
                batch["seaco_label_pad"].to(device))

    # ------------------------------------------------------------------ hotwords
    def hotword_embeddings(self, hotword_pad: torch.Tensor, hotword_lengths: torch.Tensor) -> torch.Tensor:
        """(N, L) ids padded with 0, (N,) lengths >= 1 -> (N, D): the LSTM output at each last token."""
        embedded = self.decoder.embed(hotword_pad)
        packed = nn.utils.rnn.pack_padded_sequence(embedded, hotword_lengths.cpu().long(), batch_first=True,
                                                   enforce_sorted=False)
        output = nn.utils.rnn.pad_packed_sequence(self.bias_encoder(packed)[0], batch_first=True)[0]
        if self.lstm_proj is not None:
            output = self.lstm_proj(output)
        rows = torch.arange(output.size(0), device=output.device)
        return output[rows, hotword_lengths.to(output.device).long() - 1]

    @torch.no_grad()
    def hotword_context(self, hotwords: Sequence[Sequence[int]], nfilter: int = 50,
                        seaco_weight: float = 1.0) -> HotwordContext:
        """Token-id lists (``<s>`` last, as :func:`funasr_lite.data.hotwords.hotword_ids` makes them)
        -> the embeddings decoding uses."""
        if not 0.0 < seaco_weight <= 1.0:
            raise ValueError(f"seaco_weight must be in (0, 1], got {seaco_weight}")
        pad, lengths = pad_hotwords(hotwords, self.hotword_output_layer.weight.device)
        embeddings = self.hotword_embeddings(pad, lengths)
        projected = [layer.src_attn.project_memory(embeddings) for layer in self.seaco_decoder.decoders]
        return HotwordContext(embeddings, int(nfilter), float(seaco_weight), projected)

    def _attend(self, hotwords: torch.Tensor, queries: torch.Tensor, query_lengths: torch.Tensor,
                projected: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
        """seaco_decoder from queries (B, L, D) to hotwords (B, N, D) -> (B, L, D); ``projected``:
        the hotwords' rows of :attr:`HotwordContext.projected`, (B, N, 2D) per layer."""
        lengths = torch.full((hotwords.size(0),), hotwords.size(1), dtype=torch.long, device=hotwords.device)
        return self.seaco_decoder.forward_hidden(hotwords, lengths, queries, query_lengths, memory_kv=projected)

    def _filter_hotwords(self, context: HotwordContext, hidden: torch.Tensor,
                         token_lengths: torch.Tensor) -> Tuple[torch.Tensor, Optional[List[torch.Tensor]]]:
        """The hotwords each utterance attends to: all of them, or ASF's top nfilter + <s>
        (N' = nfilter + 1) -> (embeddings (B, N', D), their projections per layer or None)."""
        batch = hidden.size(0)

        def rows(keep=None):
            take = (lambda x: x.unsqueeze(0).expand(batch, -1, -1)) if keep is None else (lambda x: x[keep])
            projected = None if context.projected is None else [take(kv) for kv in context.projected]
            return take(context.embeddings), projected

        every, every_projected = rows()
        size = context.size
        if not 0 < context.nfilter < size:
            return every, every_projected
        lengths = torch.full((batch,), size, dtype=torch.long, device=hidden.device)
        attention = self.seaco_decoder.source_attention(every, lengths, hidden, token_lengths, ASF_LAYER,
                                                        every_projected)
        valid = sequence_mask(token_lengths, hidden.size(1))[:, None, :, None]
        scores = (attention * valid).sum(dim=(1, 2))  # (B, N): over heads and this utterance's tokens
        keep = torch.topk(scores, min(context.nfilter, size - 1), dim=-1).indices
        keep = torch.cat([keep, torch.full_like(keep[:, :1], size - 1)], dim=1)  # <s> always (twice if ranked)
        return rows(keep)

    # ------------------------------------------------------------------ decoding
    def decoder_log_probs(self, encoder_out, encoder_out_lens, acoustic_embeds, token_lengths,
                          context: Optional[HotwordContext] = None):
        """-> (B, N, V): the decoder's log-probs, biased by the hotwords of ``context`` if given."""
        hidden = self.decoder.forward_hidden(encoder_out, encoder_out_lens, acoustic_embeds, token_lengths)
        log_probs = torch.log_softmax(self.decoder.output_layer(hidden), dim=-1)
        if context is None:
            return log_probs
        hotwords, projected = self._filter_hotwords(context, hidden, token_lengths)
        attended = (self._attend(hotwords, acoustic_embeds, token_lengths, projected)
                    + self._attend(hotwords, hidden, token_lengths, projected))
        bias_log_probs = torch.log_softmax(self.hotword_output_layer(attended), dim=-1)
        weight = context.seaco_weight
        no_bias = (bias_log_probs.argmax(-1) == self.NO_BIAS).to(log_probs.dtype).unsqueeze(-1)
        decoder_share = (no_bias + (1.0 - weight) / weight) / (1.0 / weight)  # FunASR's _merge_res
        return log_probs * decoder_share + bias_log_probs * (1.0 - decoder_share)

    # ------------------------------------------------------------------ training
    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        hotword_pad: Optional[torch.Tensor] = None,
        hotword_lengths: Optional[torch.Tensor] = None,
        seaco_label_pad: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """FunASR's SeacoParaformer.forward: hotwords shared by the batch (hotword_pad (N, L),
        hotword_lengths (N,)), labels (B, L_text) NO_BIAS or the hotword token, -1 padding."""
        if hotword_pad is None or hotword_lengths is None or seaco_label_pad is None:
            raise ValueError("SeacoParaformer training needs hotword_pad, hotword_lengths and seaco_label_pad "
                             "(the hotword batch of the data loader)")
        text = text[:, : int(text_lengths.max())]
        encoder_out, encoder_out_lens = self.encode(speech, speech_lengths)
        target_lengths = text_lengths + 1
        mask = sequence_mask(encoder_out_lens, encoder_out.size(1))
        acoustic_embeds = self.predictor(encoder_out, mask, target_lengths=target_lengths)[0]
        hidden = self.decoder.forward_hidden(encoder_out, encoder_out_lens, acoustic_embeds, target_lengths)
        if self.training and self.seaco_error_spans > 0:
            hotword_pad, hotword_lengths, seaco_label_pad = self._error_spans(hidden, text, text_lengths,
                                                                              seaco_label_pad)
        hotwords = self.hotword_embeddings(hotword_pad, hotword_lengths)
        hotwords = hotwords.unsqueeze(0).expand(speech.size(0), -1, -1)
        attended = self._attend(hotwords, acoustic_embeds, target_lengths) + self._attend(hotwords, hidden,
                                                                                          target_lengths)
        bias_logits = self.hotword_output_layer(attended[:, :-1])
        weights = None
        if self.seaco_no_bias_weight != 1.0:
            weights = torch.where(seaco_label_pad == self.NO_BIAS, self.seaco_no_bias_weight, 1.0)
        loss_seaco = self.criterion_seaco(bias_logits, seaco_label_pad, weights)
        stats: Dict[str, torch.Tensor] = seaco_accuracies(bias_logits.detach(), seaco_label_pad, self.NO_BIAS)
        loss = loss_seaco
        if self.train_decoder:
            branch = self.attention_branch(encoder_out, encoder_out_lens, text, text_lengths)
            loss = loss_seaco + self.seaco_weight * branch["loss_att"]
            stats["loss_att"] = branch["loss_att"].detach()
            stats["acc"] = branch["acc"]
        stats["loss_seaco"] = loss_seaco.detach()
        stats["loss"] = loss.detach()
        if self.length_normalized_loss:
            weight = target_lengths.sum()
        else:
            weight = torch.tensor(speech.size(0), device=loss.device)
        return loss, stats, weight


def seaco_accuracies(bias_logits: torch.Tensor, labels: torch.Tensor, no_bias: int) -> Dict[str, torch.Tensor]:
    """What the bias head has learnt (issue #22): ``acc_hotword``, the share of hotword positions
    (label a token) where it predicts that token, and ``acc_no_bias``, the share of the other
    positions where it predicts NO_BIAS. A head that always says NO_BIAS has a low loss (most labels
    are NO_BIAS) and biases nothing: only ``acc_hotword`` shows it. NaN when the batch has no such
    position (the engine skips non-finite stats). bias_logits (B, L, V), labels (B, L) with -1 padding."""
    predicted = bias_logits.argmax(-1)
    valid = labels >= 0
    hot, cold = valid & (labels != no_bias), valid & (labels == no_bias)
    nan = torch.tensor(float("nan"), device=labels.device)
    return {"acc_hotword": (predicted == labels)[hot].float().mean() if bool(hot.any()) else nan,
            "acc_no_bias": (predicted == no_bias)[cold].float().mean() if bool(cold.any()) else nan}


__all__ = ["ASF_LAYER", "HotwordContext", "SeacoParaformer", "pad_hotwords", "seaco_accuracies"]
