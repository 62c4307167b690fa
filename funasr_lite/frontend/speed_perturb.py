"""Speed perturbation like ``sox speed FACTOR``: tempo and pitch change together.

Playing N samples recorded at ``sr`` back at ``sr * factor`` is the same as resampling them
to ``sr / factor`` and then calling the result ``sr`` again: the utterance lasts
``1/factor`` times as long (about N / factor samples) and every frequency is scaled by
``factor``. Kaldi/ESPnet recipes use factors 0.9, 1.0, 1.1 (data dirs ``sp0.9-UTT``).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Union

import numpy as np
import torch
import torchaudio.functional


def speed_perturb(waveform: Union[np.ndarray, torch.Tensor], sample_rate: int, factor: float):
    """Change speed by ``factor`` (> 1 faster and shorter, < 1 slower and longer).

    Args:
        waveform: (N,) float samples (numpy or torch; the result has the same type).
        sample_rate: rate of ``waveform`` in Hz, also the rate of the result (only the ratio
            sr : sr / factor matters to the arithmetic).
        factor: speed factor, e.g. 0.9 or 1.1; 1.0 returns the input unchanged.

    Returns:
        (N',) samples at ``sample_rate`` with N' = ceil(N / factor) (factor taken as a fraction
        with denominator <= 1000, e.g. 0.9 = 9/10).
    """
    if not factor > 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if factor == 1.0:
        return waveform
    as_numpy = isinstance(waveform, np.ndarray)
    samples = torch.as_tensor(waveform)
    if samples.dim() != 1:
        raise ValueError(f"speed_perturb expects a 1-D waveform (N,), got shape {tuple(samples.shape)}")
    # Resampling sr -> sr / factor depends only on the ratio; as a small fraction (0.9 = 9/10)
    # the polyphase kernel has 10 phases instead of ~8889 for 16000 -> 17778 Hz.
    ratio = Fraction(factor).limit_denominator(1000)
    out = torchaudio.functional.resample(samples.to(torch.float32), ratio.numerator, ratio.denominator)
    return out.numpy() if as_numpy else out
