"""FSMN voice activity detection (FunASR's FsmnVADStreaming, offline): model dir -> speech segments."""

from funasr_lite.models.vad.endpoint import EndpointDetector, VadOptions
from funasr_lite.models.vad.fsmn import FSMN
from funasr_lite.models.vad.model import FsmnVad, VadModelDirError

__all__ = ["EndpointDetector", "FSMN", "FsmnVad", "VadModelDirError", "VadOptions"]
