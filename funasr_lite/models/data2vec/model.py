"""FunASR's Data2VecPretrainModel (config ``model: data2vec``): self-supervised pretraining of a
Data2VecEncoder on untranscribed fbank features. The encoder holds the whole method (masking,
EMA teacher, loss); this model keeps FunASR's per-step order and reports its statistics.
"""

from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from funasr_lite.models.data2vec.encoder import Data2VecEncoder


class Data2VecPretrainModel(nn.Module):
    """speech (B, T, input_size) features -> (loss, stats, weight), as our other models.

    Each forward first calls ``encoder.set_num_updates(self.num_updates)`` (FunASR's order): the
    first forward makes the EMA teacher from the student, every later forward in training mode
    moves it one EMA step towards the student. The trainer sets ``num_updates`` (set_num_updates)
    for the decay annealing; FunASR 1.4's trainer never does, so there the decay stays ema_decay.
    """

    def __init__(self, encoder: Data2VecEncoder, specaug: Optional[nn.Module] = None):
        super().__init__()
        self.specaug = specaug
        self.encoder = encoder
        self.num_updates = 0

    def set_num_updates(self, num_updates: int) -> None:
        self.num_updates = num_updates

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, text: Optional[torch.Tensor] = None,
                text_lengths: Optional[torch.Tensor] = None,
                rng: Optional[np.random.RandomState] = None,
                ) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """text is ignored (self-supervised); ``rng`` draws the mask (default: a RandomState seeded
        from torch's generator). -> (loss: the regression loss per masked frame, stats: detached 0-d tensors loss,
        target_var, pred_var, ema_decay, weight: the number of masked frames)."""
        self.encoder.set_num_updates(self.num_updates)
        speech = speech[:, : int(speech_lengths.max())]
        if self.specaug is not None and self.training:
            speech, speech_lengths = self.specaug(speech, speech_lengths)
        # FunASR passes no lengths when all are equal (its batches are clipped to one length for
        # pretraining); the mask draw then takes one span count for the batch.
        lengths = None if int(speech_lengths.min()) == int(speech_lengths.max()) else speech_lengths
        result = self.encoder.pretrain_forward(speech, lengths, rng=rng)
        sample_size = result["sample_size"]
        loss = result["loss"] / sample_size
        stats = {
            "loss": loss.detach(),
            "target_var": result["target_var"].detach().float(),
            "pred_var": result["pred_var"].detach().float(),
            "ema_decay": torch.tensor(float(result["ema_decay"]), device=loss.device),
        }
        return loss, stats, torch.tensor(sample_size, device=loss.device)


def build_data2vec(config: Dict[str, Any], input_size: int) -> Data2VecPretrainModel:
    """A Data2VecPretrainModel from a FunASR pretraining config.yaml dict (encoder: data2vec_encoder,
    encoder_conf; optional specaug; no vocabulary, decoder or predictor)."""
    from funasr_lite.models import ENCODERS, SPECAUGS, ConfigError, _lookup, check_conf

    encoder_cls = _lookup(ENCODERS, config.get("encoder", "data2vec_encoder"), "encoder")
    if encoder_cls is not Data2VecEncoder:
        raise ConfigError(f"model {config.get('model')!r} needs encoder: data2vec_encoder, "
                          f"got {config.get('encoder')!r}")
    for key in ("decoder", "predictor"):
        if config.get(key):
            raise ConfigError(f"{key}={config[key]!r}: model {config.get('model')!r} has no {key}")
    check_conf("model_conf", Data2VecPretrainModel, config.get("model_conf"), ("encoder", "specaug"))
    encoder_conf = check_conf("encoder_conf", Data2VecEncoder, config.get("encoder_conf"), ("input_size",))
    specaug = None
    if config.get("specaug"):
        specaug_cls = _lookup(SPECAUGS, config["specaug"], "specaug")
        specaug = specaug_cls(**check_conf("specaug_conf", specaug_cls, config.get("specaug_conf")))
    try:
        encoder = Data2VecEncoder(input_size=input_size, **encoder_conf)
    except ValueError as e:
        raise ConfigError(f"encoder_conf: {e}") from None
    return Data2VecPretrainModel(encoder, specaug=specaug)
