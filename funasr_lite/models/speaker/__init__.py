"""Speaker verification models: FunASR's x-vector (ResNet34 + statistic pooling + dense decoder)."""

from funasr_lite.models.speaker.decoder import EMBEDDING_NODES, DenseDecoder
from funasr_lite.models.speaker.model import XVector, build_speaker_model, is_speaker_config
from funasr_lite.models.speaker.pooling import StatisticPooling, statistic_pooling
from funasr_lite.models.speaker.resnet34 import ResNet34

__all__ = ["DenseDecoder", "EMBEDDING_NODES", "ResNet34", "StatisticPooling", "XVector", "build_speaker_model",
           "is_speaker_config", "statistic_pooling"]
