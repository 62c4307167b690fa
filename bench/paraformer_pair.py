"""One Paraformer config, two implementations: our model config from a recipe YAML and FunASR's
Paraformer class built from the same config (for benchmark_train.py, benchmark_decode.py,
benchmark_onnx.py and the whole-trainer comparisons in trainer_pair.py)."""

from __future__ import annotations

import copy
import math

from funasr_lite.models import DECODERS, ENCODERS, MODELS, PREDICTORS, SPECAUGS
from funasr_lite.utils.config import load_yaml

LARGE_VOCAB = 8404  # paraformer-large's vocabulary


def model_config(config_path: str, vocab_size: int) -> dict:
    """The YAML with input_size (n_mels * lfr_m) and vocab_size set: what build_model needs."""
    config = load_yaml(config_path)
    frontend_conf = config.get("frontend_conf") or {}
    config["input_size"] = int(frontend_conf.get("n_mels", 80)) * int(frontend_conf.get("lfr_m", 1))
    config["vocab_size"] = int(vocab_size)
    config.pop("token_list", None)
    return config


def fire_about_every_third_frame(model) -> None:
    """Random weights, a trained model's output length: the CIF output bias set to logit(0.3), so
    the predictor fires about one token per 3 encoder frames."""
    import torch

    with torch.no_grad():
        model.predictor.cif_output.bias.fill_(math.log(0.3 / 0.7))


def lfr_frame_s(config: dict) -> float:
    """Seconds of audio per model-input (LFR) frame: lfr_n * frame_shift."""
    conf = config.get("frontend_conf") or {}
    return int(conf.get("lfr_n", 1)) * float(conf.get("frame_shift", 10)) / 1000.0


def funasr_class_name(registry: dict, name: str) -> str:
    """Our registry alias ("sanm") -> the class name FunASR's registry knows ("SANMEncoder")."""
    entry = registry.get(name, name)
    if isinstance(entry, str):
        return entry.split(":")[-1]
    return entry.__name__


def require_paraformer(config: dict) -> None:
    if funasr_class_name(MODELS, config.get("model", "Paraformer")) != "Paraformer":
        raise SystemExit(f"only Paraformer configs can be compared, got model {config.get('model')!r}")


def funasr_module_names(config: dict, with_specaug: bool = True) -> dict:
    """encoder/decoder/predictor(/specaug) as FunASR class names, with copies of their *_conf."""
    names = {
        "encoder": funasr_class_name(ENCODERS, config.get("encoder", "SANMEncoder")),
        "encoder_conf": copy.deepcopy(config.get("encoder_conf") or {}),
        "decoder": funasr_class_name(DECODERS, config.get("decoder", "ParaformerSANMDecoder")),
        "decoder_conf": copy.deepcopy(config.get("decoder_conf") or {}),
        "predictor": funasr_class_name(PREDICTORS, config.get("predictor", "CifPredictorV2")),
        "predictor_conf": copy.deepcopy(config.get("predictor_conf") or {}),
        "ctc_conf": copy.deepcopy(config.get("ctc_conf") or {}),
    }
    if with_specaug and config.get("specaug"):
        names["specaug"] = funasr_class_name(SPECAUGS, config["specaug"])
        names["specaug_conf"] = copy.deepcopy(config.get("specaug_conf") or {})
    return names


def build_funasr_paraformer(config: dict, with_specaug: bool = True):
    """FunASR's Paraformer from our config: registry aliases ("sanm") -> FunASR class names."""
    import funasr  # noqa: F401  (imports every funasr module, filling its registries)
    from funasr.models.paraformer.model import Paraformer as FunasrParaformer

    require_paraformer(config)
    kwargs = dict(funasr_module_names(config, with_specaug), input_size=config["input_size"],
                  vocab_size=config["vocab_size"])
    kwargs.update(copy.deepcopy(config.get("model_conf") or {}))
    return FunasrParaformer(**kwargs)
