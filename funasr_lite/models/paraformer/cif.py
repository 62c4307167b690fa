"""Continuous integrate-and-fire (CIF) predictor.

`cif_integrate` is the vectorised integrator: token n owns the slice [n, n+1) of the running sum
of alphas (in units of the threshold), so the part of frame t's alpha given to token n is the
overlap of [c_{t-1}, c_t) with [n, n+1). A (B, N, T) matrix of those overlaps times the hidden
states gives every token's vector at once; no loop over frames.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.modules.dropout import Dropout

# Guards the target-length rescaling against an all-zero alpha sequence (0/0).
_MIN_ALPHA_SUM = 1e-8


def cif_integrate(
    hidden: torch.Tensor,
    alphas: torch.Tensor,
    threshold: float = 1.0,
    num_tokens: Optional[torch.Tensor] = None,
    min_width: int = 0,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integrate-and-fire over time.

    Args:
        hidden: (B, T, D) frame vectors.
        alphas: (B, T) non-negative frame weights.
        threshold: accumulated weight at which a token fires.
        num_tokens: (B,) tokens to emit per utterance; default = the number of fires,
            floor(sum(alphas) / threshold). Training passes the target lengths so a sum that lands
            an ulp below the integer still yields every token.
        min_width: pad the token axis to at least this many rows.

    Returns:
        embeds: (B, N, D) token vectors; rows past an utterance's token count are zero.
        num_tokens: (B,) long, tokens emitted.
        peaks: (B, T) accumulator value at each frame before a fire resets it (>= threshold at
            fire frames); used for timestamps.
    """
    # float64 prefix sums: a float32 cumsum drifts by ~1e-6 per 100 frames and miscounts fires.
    scaled = alphas.double() / threshold
    cumsum = torch.cumsum(scaled, dim=1)
    cumsum_before = F.pad(cumsum[:, :-1], (1, 0))
    if num_tokens is None:
        num_tokens = torch.floor(cumsum[:, -1]).long() if cumsum.size(1) > 0 else alphas.new_zeros(
            alphas.size(0), dtype=torch.long)
    num_tokens = num_tokens.long()
    width = max(int(num_tokens.max()) if num_tokens.numel() else 0, min_width)

    token_index = torch.arange(width, device=alphas.device, dtype=torch.float64)[None, :, None]
    overlap_end = torch.minimum(cumsum[:, None, :], token_index + 1)
    overlap_start = torch.maximum(cumsum_before[:, None, :], token_index)
    weights = (overlap_end - overlap_start).clamp(min=0.0) * threshold  # (B, N, T)
    emitted = token_index[..., 0] < num_tokens[:, None]  # (B, N)
    weights = weights * emitted[..., None]
    embeds = torch.bmm(weights.to(hidden.dtype), hidden)

    peaks = ((cumsum - torch.floor(cumsum_before)) * threshold).to(alphas.dtype)
    return embeds, num_tokens, peaks


class CifPredictorBase(nn.Module):
    """Shared alpha post-processing, training scaling, inference tail and integration."""

    def __init__(
        self,
        threshold: float,
        smooth_factor: float,
        noise_threshold: float,
        tail_threshold: float,
        tail_mask: bool,
    ):
        super().__init__()
        self.threshold = threshold
        self.smooth_factor = smooth_factor
        self.noise_threshold = noise_threshold
        self.tail_threshold = tail_threshold
        self.tail_mask = tail_mask

    def frame_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T) pre-sigmoid frame weights."""
        raise NotImplementedError

    def compute_alphas(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) with padded frames already zeroed, mask (B, T) -> alphas (B, T), 0 at padding."""
        alphas = torch.sigmoid(self.frame_logits(hidden))
        alphas = torch.relu(alphas * self.smooth_factor - self.noise_threshold)
        return alphas * mask.to(alphas.dtype)

    def append_tail(
        self, hidden: torch.Tensor, alphas: torch.Tensor, mask: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Add one zero frame and alpha = tail_threshold at the first padded position.

        This lets a final token that has integrated >= 1 - tail_threshold fire. Returns hidden
        (B, T+1, D) and alphas (B, T+1).
        """
        batch, num_frames, dim = hidden.shape
        hidden = torch.cat([hidden, hidden.new_zeros(batch, 1, dim)], dim=1)
        alphas = F.pad(alphas, (0, 1))
        if self.tail_mask:
            tail_position = mask.long().sum(1)
        else:
            tail_position = torch.full((batch,), num_frames, device=alphas.device, dtype=torch.long)
        tail = F.one_hot(tail_position, num_frames + 1).to(alphas.dtype) * self.tail_threshold
        return hidden, alphas + tail

    def forward(
        self,
        hidden: torch.Tensor,
        mask: torch.Tensor,
        target_lengths: Optional[torch.Tensor] = None,
        alpha_mask: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Predict token count and integrate. ``alpha_mask`` (B, T): frames whose alphas count
        (a streaming model's SCAMA windows: their stride frames), applied before the rescaling.

        Args:
            hidden: (B, T, D) encoder output.
            mask: (B, T) bool, True = valid frame.
            target_lengths: (B,) during training; alphas are rescaled to sum to it.

        Returns:
            acoustic_embeds (B, N, D); token_num (B,) float: the unscaled alpha sum in training
            (feeds the MAE loss), floor(sum + tail) at inference with a tail, else the plain sum;
            alphas (B, T) (T+1 with a tail), as integrated; peaks, same shape.
        """
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            # Zero padded frames so the conv at an utterance's edge sees the same zeros whether
            # or not it is padded in a batch.
            hidden = hidden.float() * mask.unsqueeze(-1).to(torch.float32)
            alphas = self.compute_alphas(hidden, mask)
            if alpha_mask is not None:
                alphas = alphas * alpha_mask.to(alphas.dtype)
            token_num = alphas.sum(-1)
            if target_lengths is not None:
                target_lengths = target_lengths.to(alphas.device)
                scale = target_lengths.to(alphas.dtype) / token_num.clamp(min=_MIN_ALPHA_SUM)
                alphas = alphas * scale[:, None]
                embeds, _, peaks = cif_integrate(hidden, alphas, self.threshold, num_tokens=target_lengths)
                return embeds, token_num, alphas, peaks

            if self.tail_threshold > 0.0:
                hidden, alphas = self.append_tail(hidden, alphas, mask)
                token_num = torch.floor(alphas.sum(-1))
            width = int(torch.round(token_num).max()) if token_num.numel() else 0
            embeds, _, peaks = cif_integrate(hidden, alphas, self.threshold, min_width=width)
            return embeds[:, :width], token_num, alphas, peaks


    def forward_chunk(self, hidden: torch.Tensor, carry: Tuple[torch.Tensor, torch.Tensor], chunk_size,
                      is_final: bool) -> Tuple[torch.Tensor, int, Tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """One streaming step (FunASR's ``CifPredictorV2.forward_chunk``) on the encoder window
        hidden (1, W, D). The first chunk_size[0] frames and, until ``is_final``, the look-ahead
        frames past chunk_size[0] + chunk_size[1] get alpha 0. ``carry`` = (hidden (1, 1, D),
        alpha (1, 1)): the weight integrated since the last fire, as one frame, prepended; at the
        end a zero frame with alpha tail_threshold. -> (embeds (1, N, D) of the N tokens fired,
        N, the new carry, the window's alphas (1, W) as counted)."""
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            hidden = hidden.float()
            alphas = self.compute_alphas(hidden, torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device))
            alphas[:, : chunk_size[0]] = 0.0
            if not is_final:
                alphas[:, chunk_size[0] + chunk_size[1]:] = 0.0
            window_alphas = alphas
            hidden = torch.cat([carry[0].to(hidden), hidden], dim=1)
            alphas = torch.cat([carry[1].to(alphas), alphas], dim=1)
            if is_final:
                hidden = torch.cat([hidden, hidden.new_zeros(hidden.size(0), 1, hidden.size(2))], dim=1)
                alphas = F.pad(alphas, (0, 1), value=self.tail_threshold)
            total = float(alphas.double().sum()) / self.threshold
            fired = int(total)
            weights, _, _ = cif_integrate(hidden, alphas, self.threshold, num_tokens=torch.tensor([fired + 1]))
            left = (total - fired) * self.threshold
            partial = weights[:, fired:fired + 1]
            carry = (partial / left if left > 0.0 else partial, alphas.new_full((1, 1), left))
            return weights[:, :fired], fired, carry, window_alphas


class CifPredictor(CifPredictorBase):
    """CIF predictor V1: depthwise conv with residual -> dropout -> relu -> Linear(idim, 1) -> sigmoid."""

    def __init__(
        self,
        idim: int,
        l_order: int,
        r_order: int,
        threshold: float = 1.0,
        dropout: float = 0.1,
        smooth_factor: float = 1.0,
        noise_threshold: float = 0.0,
        tail_threshold: float = 0.45,
    ):
        super().__init__(threshold, smooth_factor, noise_threshold, tail_threshold, tail_mask=True)
        self.context_padding = (l_order, r_order)
        self.cif_conv1d = nn.Conv1d(idim, idim, l_order + r_order + 1, groups=idim)
        self.cif_output = nn.Linear(idim, 1)
        self.dropout = Dropout(dropout)

    def frame_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        context = hidden.transpose(1, 2)
        output = self.cif_conv1d(F.pad(context, self.context_padding)) + context
        output = torch.relu(self.dropout(output).transpose(1, 2))
        return self.cif_output(output).squeeze(-1)


class CifPredictorV2(CifPredictorBase):
    """CIF predictor V2 (paraformer-large): full Conv1d -> relu -> Linear(idim, 1) -> sigmoid."""

    def __init__(
        self,
        idim: int,
        l_order: int,
        r_order: int,
        threshold: float = 1.0,
        dropout: float = 0.1,
        smooth_factor: float = 1.0,
        noise_threshold: float = 0.0,
        tail_threshold: float = 0.0,
        tf2torch_tensor_name_prefix_torch: str = "predictor",
        tf2torch_tensor_name_prefix_tf: str = "seq2seq/cif",
        tail_mask: bool = True,
    ):
        super().__init__(threshold, smooth_factor, noise_threshold, tail_threshold, tail_mask)
        self.context_padding = (l_order, r_order)
        self.cif_conv1d = nn.Conv1d(idim, idim, l_order + r_order + 1)
        self.cif_output = nn.Linear(idim, 1)
        # Kept for config compatibility; FunASR's V2 applies no dropout in its forward either.
        self.dropout = Dropout(dropout)

    def frame_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        output = torch.relu(self.cif_conv1d(F.pad(hidden.transpose(1, 2), self.context_padding)))
        return self.cif_output(output.transpose(1, 2)).squeeze(-1)


# ONNX has no cumulative minimum: the export builds it from 2^k-shifted minima (Hillis-Steele
# scan), enough steps for 2^24 frames (93 hours of 20 ms frames).
_EXPORT_SCAN_STEPS = 24


def _running_min(values: torch.Tensor) -> torch.Tensor:
    """(B, T) -> the minimum of values[:, :t+1] at each t."""
    if not torch.onnx.is_in_onnx_export():
        return torch.cummin(values, dim=1).values
    length = values.size(1)
    for step in range(_EXPORT_SCAN_STEPS):
        shift = 1 << step
        shifted = torch.cat([torch.full_like(values[:, :1], float("inf")).expand(-1, shift), values], dim=1)
        values = torch.minimum(values, shifted[:, :length])
    return values


def integrate_peaks(alphas: torch.Tensor, threshold: float) -> torch.Tensor:
    """FunASR's ``cif_wo_hidden`` on a batch: the integrate-and-fire accumulator per frame.

    Sequential rule: add alpha_t; if the sum reaches ``threshold``, the frame fires and
    ``threshold`` is subtracted (one fire per frame; excess weight waits). The value reported is
    the sum before the subtraction. Computed without a loop over frames: with c the prefix sum
    and m_t = floor(c_t / threshold), the fires so far are k_t = t + min(1, min_{s<=t}(m_s - s)).
    (The same closed form as ``funasr_lite.decode.timestamps.cif_peaks``, in torch, batched.)

    Args:
        alphas: (B, T) non-negative weights (padded frames 0).
    Returns:
        (B, T) accumulator values, in the dtype of ``alphas``.
    """
    prefix = torch.cumsum(alphas.double(), dim=1)
    whole = torch.floor(prefix / threshold)
    frame_index = torch.arange(alphas.size(1), device=alphas.device, dtype=torch.float64)
    fires_so_far = frame_index + torch.clamp(_running_min(whole - frame_index), max=1.0)
    fires_before = F.pad(fires_so_far[:, :-1], (1, 0))
    return (prefix - fires_before * threshold).to(alphas.dtype)


# FunASR's get_upsample_timestamp fires the upsampled weights at threshold - 1e-4.
_UPSAMPLED_FIRE_MARGIN = 1e-4


class CifPredictorV3(CifPredictorV2):
    """CIF predictor V3 (BiCifParaformer): V2's CIF plus an upsampled second head for timestamps.

    The second head reads the encoder output (or, with ``use_cif1_cnn``, the output of V2's conv),
    upsamples it ``upsample_times``-fold with a ConvTranspose1d (kernel = stride), runs a
    bidirectional LSTM over it (``upsample_type: cnn_blstm``, the released models; ``cnn`` has none)
    and gives one weight per upsampled frame:
    alphas2 = relu(sigmoid(cif_output2(.)) * smooth_factor2 - noise_threshold2).
    Training: their sum is a second token-count prediction (the MAE loss ``loss_pre2``).
    Inference: they are rescaled to the CIF token count and integrated at 1 - 1e-4; the fires give
    the token boundaries on a frame of encoder_frame / upsample_times (20 ms for LFR-6 x 3).

    FunASR names, so released checkpoints load: ``upsample_cnn``, ``blstm``, ``cif_output2``.
    Differences, on purpose: the LSTM runs on packed sequences, so an utterance gets the same
    weights alone as padded in a batch (FunASR's reverse direction reads the padding: its batched
    timestamps depend on the batch); ``tail_mask`` is accepted and inert as in FunASR (the tail
    always goes at the first padded frame). ``upsample_type: cnn_attn`` is refused: FunASR's
    version masks the upsampled frames with the frame-rate mask and cannot run on a batch.
    """

    def __init__(
        self,
        idim: int,
        l_order: int,
        r_order: int,
        threshold: float = 1.0,
        dropout: float = 0.1,
        smooth_factor: float = 1.0,
        noise_threshold: float = 0.0,
        tail_threshold: float = 0.0,
        tf2torch_tensor_name_prefix_torch: str = "predictor",
        tf2torch_tensor_name_prefix_tf: str = "seq2seq/cif",
        smooth_factor2: float = 1.0,
        noise_threshold2: float = 0.0,
        upsample_times: int = 5,
        upsample_type: str = "cnn",
        use_cif1_cnn: bool = True,
        tail_mask: bool = True,
    ):
        super().__init__(idim, l_order, r_order, threshold, dropout, smooth_factor, noise_threshold,
                         tail_threshold, tf2torch_tensor_name_prefix_torch, tf2torch_tensor_name_prefix_tf,
                         tail_mask=True)
        if upsample_type not in ("cnn", "cnn_blstm"):
            raise ValueError(
                f"predictor_conf: upsample_type={upsample_type!r} is not supported (cnn | cnn_blstm); "
                "FunASR's cnn_attn applies a frame-rate mask to the upsampled frames and fails on batches")
        if int(upsample_times) < 1:
            raise ValueError(f"predictor_conf: upsample_times must be >= 1, got {upsample_times}")
        self.upsample_times = int(upsample_times)
        self.upsample_type = upsample_type
        self.use_cif1_cnn = use_cif1_cnn
        self.smooth_factor2 = smooth_factor2
        self.noise_threshold2 = noise_threshold2
        self.upsample_cnn = nn.ConvTranspose1d(idim, idim, self.upsample_times, self.upsample_times)
        if upsample_type == "cnn_blstm":
            self.blstm = nn.LSTM(idim, idim, 1, bias=True, batch_first=True, dropout=0.0, bidirectional=True)
            self.cif_output2 = nn.Linear(idim * 2, 1)
        else:
            self.blstm = None
            self.cif_output2 = nn.Linear(idim, 1)

    def upsampled_alphas(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) encoder output, mask (B, T) bool -> alphas2 (B, T * upsample_times), 0 at padding.

        The BLSTM reads each utterance's own frames (packed; an ONNX export keeps the packing as
        the LSTM's sequence_lens input)."""
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            hidden = hidden.float() * mask.unsqueeze(-1).to(torch.float32)
            source = hidden.transpose(1, 2)
            if self.use_cif1_cnn:
                source = torch.relu(self.cif_conv1d(F.pad(source, self.context_padding)))
            upsampled = self.upsample_cnn(source).transpose(1, 2)  # (B, T*U, D)
            if self.blstm is not None:
                upsampled = self._run_blstm(upsampled, mask.sum(1) * self.upsample_times)
            alphas2 = torch.sigmoid(self.cif_output2(upsampled)).squeeze(-1)
            alphas2 = torch.relu(alphas2 * self.smooth_factor2 - self.noise_threshold2)
            return alphas2 * mask.repeat_interleave(self.upsample_times, dim=1).to(alphas2.dtype)

    def _run_blstm(self, frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The BLSTM over each utterance's own frames (packed), padding rows left at 0."""
        total = frames.size(1)
        if not torch.onnx.is_in_onnx_export() and bool((lengths == total).all()):
            return self.blstm(frames)[0]  # nothing padded (e.g. batch 1): no packing needed
        packed = nn.utils.rnn.pack_padded_sequence(
            frames, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        output, _ = self.blstm(packed)
        return nn.utils.rnn.pad_packed_sequence(output, batch_first=True, total_length=total)[0]

    def upsampled_timestamp_signals(
        self, hidden: torch.Tensor, mask: torch.Tensor, token_num: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """FunASR's ``get_upsample_timestamp``: alphas2 rescaled to sum to ``token_num`` (the CIF
        count, </s> fire included), and their accumulator at threshold - 1e-4.

        Returns (us_alphas, us_peaks), both (B, T * upsample_times).
        """
        alphas2 = self.upsampled_alphas(hidden, mask)
        scale = token_num.to(alphas2.dtype) / alphas2.sum(-1).clamp(min=_MIN_ALPHA_SUM)
        us_alphas = alphas2 * scale[:, None]
        return us_alphas, integrate_peaks(us_alphas, self.threshold - _UPSAMPLED_FIRE_MARGIN)
