"""The x-vector speaker model (FunASR's ``ESPnetSVModel``) and its builder from an ``sv.yaml`` config.

FunASR's released ``speech_xvector_sv-zh-cn-cnceleb-16k-spk3465-pytorch`` is ``encoder: resnet34``
-> ``pooling_type: statistic`` -> ``decoder: dense`` over 80-dim fbank (no CMVN), trained on 3465
speakers. Its weights are ``encoder.*`` and ``decoder.*`` (the pooling has none), which
:class:`XVector` reproduces, so the checkpoint loads strictly.

The embedding is what FunASR's sv inference (``Speech2Xvector.calculate_embedding``) returns: the
decoder's ``resnet1_dense`` output (before its ReLU), of one utterance at a time; here of a padded
batch, each utterance as it is alone (see :mod:`funasr_lite.models.speaker.resnet34`).

FunASR's model has no working training loss: ``ESPnetSVModel.forward`` is the ASR model's
(CTC/attention) left in place and fails on a missing ``ctc_weight``; the released model was trained
elsewhere (TensorFlow, additive angular margin softmax). :meth:`XVector.forward` gives the speaker
logits of ``output_dense``, or with ``cosine=True`` the cosines that the AAM-softmax loss
(:mod:`funasr_lite.models.losses.aam_softmax`) of the speaker task (funasr_lite.train.tasks.speaker)
trains on.
"""

import logging
from typing import Any, Dict, Mapping, Tuple

import torch
from torch import nn

from funasr_lite.data.tokenizer import vocab_size_of
from funasr_lite.models import check_conf
from funasr_lite.models.speaker.decoder import EMBEDDING_NODES, DenseDecoder
from funasr_lite.models.speaker.pooling import StatisticPooling
from funasr_lite.models.speaker.resnet34 import ResNet34
from funasr_lite.utils.config import ConfigError

logger = logging.getLogger(__name__)

SPEAKER_ENCODERS = {"resnet34": ResNet34, "ResNet34": ResNet34}
SPEAKER_POOLINGS = {"statistic": StatisticPooling, "StatisticPooling": StatisticPooling}
SPEAKER_DECODERS = {"dense": DenseDecoder, "DenseDecoder": DenseDecoder}
# sv.yaml says ``model: espnet`` (FunASR 0.x's SV task had one model class); the others name it too.
SPEAKER_MODEL_NAMES = ("espnet", "ESPnetSVModel", "xvector", "XVector")
DEFAULT_EMBEDDING_NODE = "resnet1_dense"  # FunASR's sv inference default
# sv.yaml's model keys, in its order (a speaker model dir's config.yaml; token_list comes last).
SV_CONFIG_KEYS = ("model", "model_conf", "encoder", "encoder_conf", "pooling_type", "pooling_type_conf", "decoder",
                  "decoder_conf", "frontend", "frontend_conf", "input_size", "specaug", "normalize")


class XVector(nn.Module):
    """encoder (B, T, F) -> (B, C, T', F') -> statistic pooling (B, 2C) -> dense decoder.

    Call :meth:`eval` before :meth:`embed`: BatchNorm must use its running statistics.
    """

    def __init__(self, encoder: nn.Module, pooling_layer: nn.Module, decoder: DenseDecoder, vocab_size: int):
        super().__init__()
        self.encoder = encoder
        self.pooling_layer = pooling_layer
        self.decoder = decoder
        self.vocab_size = vocab_size

    def pool(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, F) fbank, (B,) frames -> (B, 2C) pooled statistics of each utterance's own frames."""
        encoded, encoded_lengths = self.encoder(feats, lengths)
        return self.pooling_layer(encoded, encoded_lengths)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor,
                cosine: bool = False) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(B, T, F), (B,) -> speaker logits (B, vocab_size), {embedding node: (B, D)}.
        ``cosine``: the logits are cosines to each speaker's row (the AAM-softmax training input)."""
        return self.decoder(self.pool(feats, lengths), cosine)

    def embed(self, feats: torch.Tensor, lengths: torch.Tensor,
              embedding_node: str = DEFAULT_EMBEDDING_NODE) -> torch.Tensor:
        """(B, T, F) padded fbank, (B,) frames -> (B, D) speaker embeddings (not normalised)."""
        if embedding_node not in EMBEDDING_NODES:
            raise ValueError(f"embedding_node {embedding_node!r}: choose one of {', '.join(EMBEDDING_NODES)}")
        return self(feats, lengths)[1][embedding_node]


def _lookup(registry: Mapping[str, Any], name: Any, key: str):
    if name not in registry:
        raise ConfigError(f"{key}: unknown {name!r}; valid: {', '.join(sorted(registry))}")
    return registry[name]


def speaker_input_size(config: Mapping[str, Any]) -> int:
    """``input_size`` when set, else ``frontend_conf`` n_mels * lfr_m (FunASR: 80 * 1)."""
    if config.get("input_size") is not None:
        return int(config["input_size"])
    frontend_conf = config.get("frontend_conf") or {}
    return int(frontend_conf.get("n_mels", 80)) * int(frontend_conf.get("lfr_m", 1))


def is_speaker_config(config: Mapping[str, Any]) -> bool:
    """Whether a config describes a speaker model (it has ``pooling_type``, or a speaker encoder)."""
    return "pooling_type" in config or config.get("encoder") in SPEAKER_ENCODERS


def build_speaker_model(config: Mapping[str, Any]) -> XVector:
    """An :class:`XVector` from a FunASR sv.yaml-style config (every conf checked before building).

    Reads model (``espnet``), encoder/encoder_conf, pooling_type/pooling_type_conf (``pooling_dim``,
    ``eps``), decoder/decoder_conf, input_size (or frontend_conf), vocab_size (or token_list: the
    speakers). ``normalize``, ``preencoder`` and ``postencoder`` must be null; ``specaug`` is
    training-only and not built.
    """
    model_name = config.get("model", "espnet")
    if model_name not in SPEAKER_MODEL_NAMES:
        raise ConfigError(f"model: {model_name!r} is not a speaker model; valid: {', '.join(SPEAKER_MODEL_NAMES)}")
    if config.get("model_conf"):
        raise ConfigError(f"model_conf: {sorted(config['model_conf'])}: the speaker model takes no arguments")
    for key in ("normalize", "preencoder", "postencoder"):
        if config.get(key) not in (None, "null"):
            raise ConfigError(f"{key}={config[key]!r} is not supported by the speaker model")
    encoder_cls = _lookup(SPEAKER_ENCODERS, config.get("encoder", "resnet34"), "encoder")
    pooling_cls = _lookup(SPEAKER_POOLINGS, config.get("pooling_type", "statistic"), "pooling_type")
    decoder_cls = _lookup(SPEAKER_DECODERS, config.get("decoder", "dense"), "decoder")
    encoder_conf = check_conf("encoder_conf", encoder_cls, config.get("encoder_conf"), ("input_size",))
    pooling_conf = check_conf("pooling_type_conf", pooling_cls, config.get("pooling_type_conf"))
    decoder_conf = check_conf("decoder_conf", decoder_cls, config.get("decoder_conf"),
                              ("vocab_size", "encoder_output_size"))
    vocab_size = vocab_size_of(config)

    encoder = encoder_cls(input_size=speaker_input_size(config), **encoder_conf)
    pooling = pooling_cls(**pooling_conf)
    if tuple(sorted(pooling.pooling_dim)) != (2, 3):
        raise ConfigError(f"pooling_type_conf: pooling_dim {list(pooling.pooling_dim)}: the dense decoder "
                          "takes statistics over time and frequency, (2, 3)")
    decoder = decoder_cls(vocab_size=vocab_size, encoder_output_size=2 * encoder.output_size(), **decoder_conf)
    model = XVector(encoder, pooling, decoder, vocab_size)
    logger.info("built XVector: %s + %s + %s, %d speakers, %d parameters", type(encoder).__name__,
                type(pooling).__name__, type(decoder).__name__, vocab_size, sum(p.numel() for p in model.parameters()))
    return model
