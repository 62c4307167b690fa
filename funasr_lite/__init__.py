"""funasr_lite: Kaldi-style recipe toolkit for Paraformer.

Layers, lowest first; a module imports only from its own layer or lower ones, at module level
and inside functions alike (tests/test_layers.py checks every import, refuses import cycles and
imports each layer alone in a fresh interpreter)::

    utils      small shared helpers: config files and ConfigError, Kaldi key-value files,
               atomic writes, job runner, progress
    frontend   audio, fbank, LFR, CMVN, SpecAug, speed perturbation
    data       data dirs, token lists and tokenizers, datasets, batching, corpora
    models     build_model, encoders, Paraformer parts, LMs, VAD; checkpoint reading
    decode     search, CIF timestamps, 1best_recog writers, model dirs, scoring
    train      trainer, LM trainer, training config, DDP, checkpoints, averaging
               (above decode: validation decodes and scores with decode's functions)
    api        the Python API (``funasr_lite.Paraformer``, ``funasr_lite.VAD``)
    bin        thin command-line entry points

``import funasr_lite`` itself imports nothing; ``Paraformer``/``VAD``/``Punctuator`` are loaded on first
use.
"""

__version__ = "0.1.0"


def __getattr__(name):
    """``from funasr_lite import Paraformer`` (or ``VAD``, ``Punctuator``) without importing torch on ``import funasr_lite``."""
    if name == "Paraformer":
        from funasr_lite.api import Paraformer

        return Paraformer
    if name == "VAD":
        from funasr_lite.api import VAD

        return VAD
    if name == "Punctuator":
        from funasr_lite.models.punc import Punctuator

        return Punctuator
    raise AttributeError(f"module 'funasr_lite' has no attribute {name!r}")
