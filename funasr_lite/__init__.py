"""funasr_lite: Kaldi-style recipe toolkit for Paraformer.

Layers, lowest first; a module imports only from its own layer or lower ones, at module level
and inside functions alike (tests/test_layers.py checks every import, refuses import cycles and
imports each layer alone in a fresh interpreter)::

    utils      small shared helpers: config files and ConfigError, Kaldi key-value files,
               atomic writes, progress, logging set-up
    jobs       the Kaldi-style job runner: options, local back-end, Slurm back-end
    frontend   audio, fbank, LFR, CMVN, SpecAug, speed perturbation
    data       data dirs, token lists and tokenizers, datasets, batching, corpora
    models     build_model, encoders, Paraformer parts, LMs, VAD; checkpoint reading
    decode     search (greedy, beam + CTC + LM, AED) and timestamps
    inference  model dirs loaded and checked, batch decoding, long-form, ONNX backend, 1best_recog files
    scoring    CER from one alignment, timestamp scores, decode-dir reports, punctuation scores
    export     model-dir export (stage 8), ONNX export
    train      the training engine and its tasks (ASR, LM, punctuation), config, DDP, checkpoints
    api        the Python API (``funasr_lite.SpeechRecognizer``, ``funasr_lite.VAD``, ``funasr_lite.Punctuator``,
               ``funasr_lite.SpeakerVerifier``)
    serve      the server: OpenAI-compatible HTTP, FunASR's WebSocket protocol, a web page
    bin        thin command-line entry points

docs/architecture.md draws the whole house (job -> folder -> entry point).

``import funasr_lite`` itself imports nothing; ``SpeechRecognizer``/``VAD``/``Punctuator`` are loaded on first
use.
"""

__version__ = "0.1.0"


def __getattr__(name):
    """``from funasr_lite import SpeechRecognizer`` (or ``VAD``, ``Punctuator``) without importing torch on
    ``import funasr_lite``. ``Paraformer``, this API's name before 0.2, still gives ``SpeechRecognizer`` with a
    DeprecationWarning (the model class of that name is ``funasr_lite.models.paraformer.model.Paraformer``)."""
    if name == "SpeechRecognizer":
        from funasr_lite.api import SpeechRecognizer

        return SpeechRecognizer
    if name == "Paraformer":
        import warnings

        from funasr_lite.api import SpeechRecognizer

        warnings.warn("funasr_lite.Paraformer is now funasr_lite.SpeechRecognizer", DeprecationWarning, stacklevel=2)
        return SpeechRecognizer
    if name == "VAD":
        from funasr_lite.api import VAD

        return VAD
    if name == "SpeakerVerifier":
        from funasr_lite.api import SpeakerVerifier

        return SpeakerVerifier
    if name == "TwoPass":
        from funasr_lite.api import TwoPass

        return TwoPass
    if name == "Punctuator":
        from funasr_lite.models.punc import Punctuator

        return Punctuator
    raise AttributeError(f"module 'funasr_lite' has no attribute {name!r}")
