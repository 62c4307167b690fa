"""The one feature frontend: audio -> Kaldi fbank -> LFR -> CMVN (FunASR's ``WavFrontend``), docs/spec.md §1.

Built from a config's ``frontend_conf`` (``fs``, ``window``, ``n_mels``, ``frame_length``,
``frame_shift``, ``lfr_m``, ``lfr_n``; defaults in ``funasr_lite.utils.config.FRONTEND_DEFAULTS``)
and an ``am.mvn``. Every place that turns audio into model input uses it: stage 1
(``compute_fbank`` / ``utils/make_fbank.sh``) computes the raw fbank with :meth:`WavFrontend.fbank`;
the training dataset and decoding of stored features start at :meth:`WavFrontend.lfr_cmvn`
(the raw-fbank entry); decoding audio (``infer``, the Python API) runs :meth:`WavFrontend.__call__`.

Stored features carry their options: ``make_fbank.sh`` writes ``<data-dir>/fbank.json``
(:func:`fbank_options`), and training and decoding refuse a data dir whose ``fbank.json``
differs from the model's ``frontend_conf`` (:func:`check_feature_options`), naming both settings.
``dither`` is recorded but not compared: training features may be dithered, decoding never is.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from funasr_lite.frontend.audio import AudioInfo, read_audio, resample_waveform
from funasr_lite.frontend.cmvn import CmvnError, apply_cmvn, read_am_mvn
from funasr_lite.frontend.fbank import compute_fbank, num_fbank_frames
from funasr_lite.frontend.lfr import lfr_length, lfr_stack
from funasr_lite.utils.config import resolve_frontend_conf
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

FBANK_OPTIONS_FILE = "fbank.json"
# compute_fbank's Kaldi settings that frontend_conf cannot change; recorded so that features
# made by an older or newer toolkit with other settings are caught like a frontend_conf change.
FIXED_FBANK_SETTINGS: Dict[str, Any] = {
    "snip_edges": True, "preemphasis_coefficient": 0.97, "remove_dc_offset": True, "energy_floor": 0.0,
}
# The options stored features and the model must agree on (all but dither).
COMPARED_OPTIONS = ("fs", "window", "n_mels", "frame_length", "frame_shift", *FIXED_FBANK_SETTINGS)


class FeatureOptionsError(ValueError):
    """Stored features made with other fbank options than the model's; names both settings."""


def fbank_options(frontend_conf: Mapping[str, Any], dither: float = 0.0) -> Dict[str, Any]:
    """The options that fix the fbank features of a (resolved) ``frontend_conf``, as recorded in
    ``fbank.json``: fs, window, n_mels, frame_length, frame_shift (ms), dither, and the fixed
    Kaldi settings. Numbers are normalised (ints, float milliseconds) so records compare exactly."""
    return {
        "fs": int(frontend_conf["fs"]),
        "window": str(frontend_conf["window"]),
        "n_mels": int(frontend_conf["n_mels"]),
        "frame_length": float(frontend_conf["frame_length"]),
        "frame_shift": float(frontend_conf["frame_shift"]),
        "dither": float(dither),
        **FIXED_FBANK_SETTINGS,
    }


def _shown(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def describe_options(options: Mapping[str, Any], keys=None) -> str:
    """``n_mels=80 frame_length=25`` (all keys of ``options`` when ``keys`` is None)."""
    keys = list(options) if keys is None else keys
    return " ".join(f"{key}={_shown(options.get(key, '(unset)'))}" for key in keys)


def write_fbank_options(path, options: Mapping[str, Any]) -> None:
    """Write ``fbank.json`` atomically (one line, sorted keys, so equal records are equal files)."""
    with atomic_open(path) as f:
        f.write(json.dumps(dict(options), sort_keys=True) + "\n")


def read_fbank_options(path) -> Dict[str, Any]:
    """Read ``fbank.json``; a malformed file is a FeatureOptionsError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            options = json.load(f)
    except (OSError, ValueError) as e:
        raise FeatureOptionsError(f"{path}: not a readable fbank options file ({e})") from None
    if not isinstance(options, dict):
        raise FeatureOptionsError(f"{path}: expected a JSON object of fbank options")
    return options


def option_differences(found: Mapping[str, Any], expected: Mapping[str, Any]) -> list:
    """Keys of :data:`COMPARED_OPTIONS` whose values differ (numbers compared as numbers)."""
    differ = []
    for key in COMPARED_OPTIONS:
        a, b = found.get(key), expected.get(key)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
                and not isinstance(b, bool):
            if float(a) != float(b):
                differ.append(key)
        elif a != b:
            differ.append(key)
    return differ


def check_feature_options(data_dir, expected: Mapping[str, Any], expected_source: str) -> bool:
    """Refuse stored features of ``data_dir`` made with other fbank options than ``expected``.

    Args:
        data_dir: a data dir whose ``feats.scp`` is about to be used.
        expected: :func:`fbank_options` of the model's / training config's frontend_conf.
        expected_source: what ``expected`` came from (named in the error), e.g. a config.yaml.
    Returns:
        True when ``<data_dir>/fbank.json`` exists and agrees; False (with a warning) when the
        data dir has no record (features made before records existed: only their dim is checked).
    Raises:
        FeatureOptionsError naming both files and both settings.
    """
    path = os.path.join(os.fspath(data_dir), FBANK_OPTIONS_FILE)
    if not os.path.isfile(path):
        logger.warning("%s: no %s; cannot check that its features were made with %s's fbank options "
                       "(rerun utils/make_fbank.sh --fbank-config to record them)", data_dir, FBANK_OPTIONS_FILE,
                       expected_source)
        return False
    found = read_fbank_options(path)
    differ = option_differences(found, expected)
    if differ:
        raise FeatureOptionsError(
            f"{path}: features were made with {describe_options(found, differ)} but {expected_source} "
            f"has {describe_options(expected, differ)}; recompute the features with that config's options "
            "(utils/make_fbank.sh --fbank-config CONFIG) or use a model/config that matches them"
        )
    return True


class WavFrontend:
    """audio -> (T', n_mels * lfr_m) model input: Kaldi fbank (dither 0) -> LFR -> CMVN.

    Args:
        frontend_conf: a config's ``frontend_conf`` (defaults filled and checked here;
            ``funasr_lite.utils.config.ConfigError`` for a bad value). Its ``dither`` is ignored.
        cmvn_file: ``am.mvn`` (n_mels * lfr_m dims); None: no CMVN (LFR only).
        cmvn: ``(shift, scale)`` already read, instead of cmvn_file (cmvn_file then only names it).
        dither: fbank dither; 0 (deterministic) unless making training features on purpose.
        source: the file frontend_conf came from, named in errors.
    """

    def __init__(self, frontend_conf: Optional[Mapping[str, Any]] = None, cmvn_file=None, *,
                 cmvn: Optional[Tuple[np.ndarray, np.ndarray]] = None, dither: float = 0.0,
                 source: str = "frontend_conf"):
        self.source = source
        self.conf = resolve_frontend_conf(dict(frontend_conf or {}), source)
        self.dither = float(dither)
        self.cmvn_file = os.fspath(cmvn_file) if cmvn_file is not None else None
        if cmvn is None and self.cmvn_file is not None:
            cmvn = read_am_mvn(self.cmvn_file)
        self.cmvn_shift, self.cmvn_scale = cmvn if cmvn is not None else (None, None)
        if self.cmvn_shift is not None and self.cmvn_shift.shape[0] != self.output_size:
            raise CmvnError(
                f"{self.cmvn_file or 'CMVN'} has {self.cmvn_shift.shape[0]} dims but {source} frontend_conf gives "
                f"n_mels * lfr_m = {self.n_mels} * {self.lfr_m} = {self.output_size}"
            )
        self._fbank_kwargs = dict(
            num_mel_bins=self.n_mels, frame_length=float(self.conf["frame_length"]),
            frame_shift=float(self.conf["frame_shift"]), window_type=str(self.conf["window"]), dither=self.dither,
            energy_floor=FIXED_FBANK_SETTINGS["energy_floor"],
            preemphasis_coefficient=FIXED_FBANK_SETTINGS["preemphasis_coefficient"],
            remove_dc_offset=FIXED_FBANK_SETTINGS["remove_dc_offset"], snip_edges=FIXED_FBANK_SETTINGS["snip_edges"],
        )

    # ------------------------------------------------------------ sizes
    @property
    def sample_rate(self) -> int:
        return int(self.conf["fs"])

    @property
    def n_mels(self) -> int:
        return int(self.conf["n_mels"])

    @property
    def lfr_m(self) -> int:
        return int(self.conf["lfr_m"])

    @property
    def lfr_n(self) -> int:
        return int(self.conf["lfr_n"])

    @property
    def frame_shift_ms(self) -> float:
        return float(self.conf["frame_shift"])

    @property
    def output_size(self) -> int:
        """Model input dim: n_mels * lfr_m."""
        return self.n_mels * self.lfr_m

    @property
    def output_frame_ms(self) -> float:
        """Duration of one model-input (LFR) frame."""
        return self.frame_shift_ms * self.lfr_n

    def fbank_options(self) -> Dict[str, Any]:
        """What :func:`fbank_options` records for this frontend's features."""
        return fbank_options(self.conf, self.dither)

    def num_frames(self, num_samples: int) -> int:
        """Model-input frames of ``num_samples`` samples (0 when shorter than one window)."""
        raw = num_fbank_frames(num_samples, self.sample_rate, self.conf["frame_length"], self.conf["frame_shift"])
        return lfr_length(raw, self.lfr_n) if raw else 0

    # ------------------------------------------------------------ audio
    def read_audio(self, path_or_cmd: str, resample: bool = True, channel: Optional[int] = None
                   ) -> Tuple[np.ndarray, AudioInfo]:
        """A file or ``cmd |`` pipe -> ``((N,) float32 at the frontend's rate, info)`` (AudioError)."""
        waveform, _, info = read_audio(path_or_cmd, self.sample_rate, resample=resample, channel=channel)
        return waveform, info

    def resample(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """(N,) float32 at ``sample_rate`` -> the frontend's rate."""
        return resample_waveform(waveform, sample_rate, self.sample_rate)

    # ------------------------------------------------------------ features
    def fbank(self, waveform: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
        """(N,) float in [-1, 1] at the frontend's rate -> (T, n_mels) raw fbank.

        Raises WaveformTooShortError (N < one window) and WaveformRangeError (see compute_fbank).
        """
        return compute_fbank(waveform, self.sample_rate, **self._fbank_kwargs)

    def lfr_cmvn(self, fbank: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
        """(T, n_mels) raw fbank (stored features enter here) -> (T', n_mels * lfr_m) float32."""
        stacked, _ = lfr_stack(torch.as_tensor(fbank).float(), m=self.lfr_m, n=self.lfr_n)
        if self.cmvn_shift is None:
            return stacked
        return apply_cmvn(stacked, self.cmvn_shift, self.cmvn_scale, source=self.cmvn_file).float()

    def __call__(self, waveform: Union[np.ndarray, torch.Tensor]) -> torch.Tensor:
        """(N,) float in [-1, 1] at the frontend's rate -> (T', n_mels * lfr_m) model input."""
        return self.lfr_cmvn(self.fbank(waveform))

    def __repr__(self) -> str:
        return (f"WavFrontend({describe_options(self.conf, ('fs', 'window', 'n_mels', 'frame_length', 'frame_shift', 'lfr_m', 'lfr_n'))}, "
                f"cmvn={self.cmvn_file or ('given' if self.cmvn_shift is not None else None)})")


__all__ = [
    "COMPARED_OPTIONS", "FBANK_OPTIONS_FILE", "FeatureOptionsError", "WavFrontend", "check_feature_options",
    "describe_options", "fbank_options", "option_differences", "read_fbank_options", "write_fbank_options",
]
