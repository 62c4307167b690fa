"""Model building from a FunASR-style config dict.

Components are chosen by plain dict registries. An entry is a class or a "module:Class" string
imported only when that component is built, so optional components (Conformer, SpecAug, ...) need
not exist for the others to work. Every *_conf is checked against the component's constructor
before anything is built: unknown keys and wrong value types fail with the key and component named.
"""

import difflib
import importlib
import inspect
import logging
import typing
from collections.abc import Sequence as AbcSequence
from typing import Any, Dict, Optional

from funasr_lite.data.tokenizer import vocab_size_of
from funasr_lite.models.ctc import CTC
from funasr_lite.models.encoders.sanm import SANMEncoder
from funasr_lite.models.paraformer.cif import CifPredictor, CifPredictorV2, CifPredictorV3
from funasr_lite.models.paraformer.decoder_sanm import ParaformerSANMDecoder
from funasr_lite.models.paraformer.model import BiCifParaformer, Paraformer
from funasr_lite.utils.config import ConfigError  # the one config error (also raised here)

logger = logging.getLogger(__name__)

_CONFORMER = "funasr_lite.models.encoders.conformer:ConformerEncoder"
_SAN_DECODER = "funasr_lite.models.paraformer.decoder_san:ParaformerSANDecoder"
_TRANSFORMER_DECODER = "funasr_lite.models.aed.decoder:TransformerDecoder"
_CONFORMER_AED = "funasr_lite.models.aed.model:Conformer"
_SANM_CHUNK = "funasr_lite.models.encoders.sanm:SANMEncoderChunkOpt"
_STREAMING = "funasr_lite.models.paraformer.streaming:ParaformerStreaming"
_UNIASR_NAMES = ("UniASR", "uniasr")
_SEACO = "funasr_lite.models.paraformer.seaco:SeacoParaformer"
_CONTEXTUAL = "funasr_lite.models.paraformer.contextual:ContextualParaformer"
_PARAFORMER_BERT = "funasr_lite.models.paraformer.bert:ParaformerBert"
_CONTEXTUAL_DECODER = "funasr_lite.models.paraformer.decoder_contextual:ContextualParaformerDecoder"
_SPECAUG = "funasr_lite.frontend.specaug:SpecAug"
_SPECAUG_LFR = "funasr_lite.frontend.specaug:SpecAugLFR"
_DATA2VEC_ENCODER = "funasr_lite.models.data2vec.encoder:Data2VecEncoder"
_DATA2VEC_NAMES = ("data2vec", "Data2VecPretrainModel")  # pretraining: an encoder only, no vocabulary

ENCODERS = {
    "sanm": SANMEncoder,
    "SANMEncoder": SANMEncoder,
    "conformer": _CONFORMER,
    "ConformerEncoder": _CONFORMER,
    "sanm_chunk_opt": _SANM_CHUNK,
    "SANMEncoderChunkOpt": _SANM_CHUNK,
    "data2vec_encoder": _DATA2VEC_ENCODER,
    "Data2VecEncoder": _DATA2VEC_ENCODER,
}
DECODERS = {
    "paraformer_decoder_sanm": ParaformerSANMDecoder,
    "ParaformerSANMDecoder": ParaformerSANMDecoder,
    "paraformer_decoder_san": _SAN_DECODER,
    "ParaformerSANDecoder": _SAN_DECODER,
    "transformer": _TRANSFORMER_DECODER,
    "TransformerDecoder": _TRANSFORMER_DECODER,
    "contextual_paraformer_decoder": _CONTEXTUAL_DECODER,
    "ContextualParaformerDecoder": _CONTEXTUAL_DECODER,
    "fsmn_scama_opt": "funasr_lite.models.uniasr.decoder:FsmnDecoderSCAMAOpt",  # UniASR's
    "FsmnDecoderSCAMAOpt": "funasr_lite.models.uniasr.decoder:FsmnDecoderSCAMAOpt",
}
PREDICTORS = {
    "cif_predictor": CifPredictor,
    "CifPredictor": CifPredictor,
    "cif_predictor_v2": CifPredictorV2,
    "CifPredictorV2": CifPredictorV2,
    "cif_predictor_v3": CifPredictorV3,
    "CifPredictorV3": CifPredictorV3,
}
SPECAUGS = {
    "specaug": _SPECAUG,
    "SpecAug": _SPECAUG,
    "specaug_lfr": _SPECAUG_LFR,
    "SpecAugLFR": _SPECAUG_LFR,
}
MODELS = {
    "paraformer": Paraformer,
    "Paraformer": Paraformer,
    "bicif_paraformer": BiCifParaformer,
    "BiCifParaformer": BiCifParaformer,
    "seaco_paraformer": _SEACO,
    "SeacoParaformer": _SEACO,
    "contextual_paraformer": _CONTEXTUAL,
    "ContextualParaformer": _CONTEXTUAL,
    "paraformer_bert": _PARAFORMER_BERT,  # FunASR 0.x's name (its AISHELL configs)
    "ParaformerBert": _PARAFORMER_BERT,
    "paraformer_streaming": _STREAMING,
    "ParaformerStreaming": _STREAMING,
    "uniasr": "funasr_lite.models.uniasr.model:UniASR",  # built by build_uniasr (below)
    "UniASR": "funasr_lite.models.uniasr.model:UniASR",
    "conformer": _CONFORMER_AED,  # the attention encoder-decoder (FunASR's Conformer model class)
    "Conformer": _CONFORMER_AED,
    "data2vec": "funasr_lite.models.data2vec.model:Data2VecPretrainModel",  # built by build_data2vec
    "Data2VecPretrainModel": "funasr_lite.models.data2vec.model:Data2VecPretrainModel",
}

# Arguments build_model supplies itself; a *_conf may not set them.
_ENCODER_SUPPLIED = ("input_size",)
_DECODER_SUPPLIED = ("vocab_size", "encoder_output_size")
_CTC_SUPPLIED = ("odim", "encoder_output_size")
_MODEL_SUPPLIED = ("encoder", "predictor", "decoder", "vocab_size", "specaug", "ctc", "seaco_decoder")
# SeACo's keys FunASR reads from model_conf updated by the top level (AutoModel builds the model
# from deep_update(model_conf, config)): either place works, the top level wins.
_SEACO_KEYS = ("seaco_decoder", "seaco_decoder_conf", "inner_dim", "bias_encoder_type", "bias_encoder_dropout_rate",
               "bias_encoder_bid", "seaco_lsm_weight", "seaco_length_normalized_loss", "train_decoder",
               "seaco_weight", "NO_BIAS")


def _resolve(entry):
    """A registry entry -> class (imports "module:Class" strings on first use)."""
    if isinstance(entry, str):
        module_name, class_name = entry.split(":")
        return getattr(importlib.import_module(module_name), class_name)
    return entry


def _lookup(registry: Dict[str, Any], name: str, kind: str):
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(registry))}")
    return _resolve(registry[name])


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _value_matches(value, annotation) -> bool:
    """Whether a YAML-loaded value fits a constructor annotation (lenient where YAML is: int for float)."""
    if annotation in (Any, inspect.Parameter.empty):
        return True
    if annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        return any(_value_matches(value, arg) for arg in typing.get_args(annotation))
    if origin in (list, tuple, AbcSequence) or annotation in (list, tuple, AbcSequence):
        if not isinstance(value, (list, tuple)):
            return False
        args = [arg for arg in typing.get_args(annotation) if arg is not Ellipsis]
        return not args or all(_value_matches(item, args[0]) for item in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def _expected_type(parameter: inspect.Parameter, hints: Dict[str, Any]):
    """The annotation, else the default's type (None default: anything goes)."""
    if parameter.name in hints:
        return hints[parameter.name]
    if parameter.default is inspect.Parameter.empty or parameter.default is None:
        return Any
    return float if isinstance(parameter.default, float) else type(parameter.default)


def check_conf(
    conf_name: str, cls, conf: Optional[Dict[str, Any]], supplied=(), may_omit=()
) -> Dict[str, Any]:
    """Validate `conf` against cls.__init__: unknown keys, supplied keys, value types, missing
    required keys (except those in `may_omit`). Returns a copy."""
    conf = dict(conf or {})
    # A constructor that passes **kwargs on to its base class (SeacoParaformer) is checked with the
    # base's parameters too.
    parameters: Dict[str, inspect.Parameter] = {}
    hints: Dict[str, Any] = {}
    accepts_any = True
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        signature = inspect.signature(init)
        try:
            hints = {**typing.get_type_hints(init), **hints}
        except Exception:  # unresolvable annotations: fall back to defaults' types
            pass
        for name, p in signature.parameters.items():
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                parameters.setdefault(name, p)
        if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
            accepts_any = False
            break
    for key, value in conf.items():
        if key in supplied:
            raise ConfigError(f"{conf_name}: key {key!r} for {cls.__name__} is set by build_model; remove it")
        if key not in parameters:
            if accepts_any:
                continue
            valid = [name for name in parameters if name not in supplied]
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
            raise ConfigError(f"{conf_name}: unknown key {key!r} for {cls.__name__}{hint}")
        expected = _expected_type(parameters[key], hints)
        if not _value_matches(value, expected):
            raise ConfigError(
                f"{conf_name}: key {key!r} for {cls.__name__} expects {_type_name(expected)}, "
                f"got {type(value).__name__} ({value!r})"
            )
    missing = [
        name for name, p in parameters.items()
        if p.default is inspect.Parameter.empty and name not in conf and name not in supplied + tuple(may_omit)
    ]
    if missing:
        raise ConfigError(f"{conf_name}: {cls.__name__} needs {', '.join(repr(m) for m in missing)}")
    return conf


def _default(cls, name: str):
    """The default of constructor argument ``name`` (looked up the class's bases, as check_conf does)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None and name in inspect.signature(init).parameters:
            return inspect.signature(init).parameters[name].default
    raise KeyError(f"{cls.__name__} takes no {name!r}")


def _input_size(config: Dict[str, Any]) -> int:
    if config.get("input_size") is not None:
        return int(config["input_size"])
    frontend_conf = config.get("frontend_conf")
    if not frontend_conf:
        raise ConfigError("config needs input_size or frontend_conf (n_mels * lfr_m)")
    return int(frontend_conf.get("n_mels", 80)) * int(frontend_conf.get("lfr_m", 1))


def build_model(config: Dict[str, Any]):
    """Build a model from a FunASR config.yaml-style dict.

    Reads model/model_conf, encoder/encoder_conf, decoder/decoder_conf, predictor/predictor_conf,
    specaug/specaug_conf, ctc_conf, input_size (or frontend_conf n_mels * lfr_m) and vocab_size
    (or token_list); other top-level keys are ignored. All confs are validated before building.
    """
    if config.get("normalize") not in (None, "null", "None"):  # "None": a YAML string, FunASR's data2vec configs
        raise ConfigError(f"normalize={config['normalize']!r} is not supported: CMVN is applied by the data loader")
    input_size = _input_size(config)
    if config.get("model") in _DATA2VEC_NAMES:
        from funasr_lite.models.data2vec.model import build_data2vec

        return build_data2vec(config, input_size)
    vocab_size = vocab_size_of(config)

    if config.get("model") in _UNIASR_NAMES:  # two passes, its own sections (encoder2, decoder2, ...)
        from funasr_lite.models.uniasr.model import build_uniasr

        try:
            return build_uniasr(config, input_size, vocab_size)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"UniASR: {e}") from None
    model_cls = _lookup(MODELS, config.get("model", "Paraformer"), "model")
    # Attention encoder-decoders (Conformer) have no CIF predictor.
    uses_predictor = getattr(model_cls, "uses_predictor", True)
    encoder_cls = _lookup(ENCODERS, config.get("encoder", "SANMEncoder"), "encoder")
    default_decoder = "ParaformerSANMDecoder" if uses_predictor else "TransformerDecoder"
    decoder_cls = _lookup(DECODERS, config.get("decoder", default_decoder), "decoder")
    if uses_predictor:
        predictor_cls = _lookup(PREDICTORS, config.get("predictor", "CifPredictorV2"), "predictor")
    elif config.get("predictor"):
        raise ConfigError(f"predictor={config['predictor']!r}: model {config.get('model')!r} has no predictor")
    specaug_name = config.get("specaug")
    specaug_cls = _lookup(SPECAUGS, specaug_name, "specaug") if specaug_name else None

    raw_model_conf = dict(config.get("model_conf") or {})
    seaco_decoder_spec = None
    if "seaco_decoder" in inspect.signature(model_cls.__init__).parameters:
        raw_model_conf.update({key: config[key] for key in _SEACO_KEYS if key in config})
        seaco_name = raw_model_conf.pop("seaco_decoder", None)
        if not seaco_name:
            raise ConfigError(f"model {config.get('model')!r} needs seaco_decoder (and seaco_decoder_conf)")
        seaco_cls = _lookup(DECODERS, seaco_name, "seaco_decoder")
        seaco_decoder_spec = (seaco_cls, check_conf("seaco_decoder_conf", seaco_cls,
                                                    raw_model_conf.pop("seaco_decoder_conf", None), _DECODER_SUPPLIED))
    model_conf = check_conf("model_conf", model_cls, raw_model_conf, _MODEL_SUPPLIED)
    encoder_conf = check_conf("encoder_conf", encoder_cls, config.get("encoder_conf"), _ENCODER_SUPPLIED)
    decoder_conf = check_conf("decoder_conf", decoder_cls, config.get("decoder_conf"), _DECODER_SUPPLIED)
    if uses_predictor:
        predictor_conf = check_conf("predictor_conf", predictor_cls, config.get("predictor_conf"), may_omit=("idim",))
    ctc_weight = model_conf.get("ctc_weight", _default(model_cls, "ctc_weight"))
    ctc_conf = check_conf("ctc_conf", CTC, config.get("ctc_conf"), _CTC_SUPPLIED) if ctc_weight > 0 else None
    specaug_conf = check_conf("specaug_conf", specaug_cls, config.get("specaug_conf")) if specaug_cls else None

    encoder = encoder_cls(input_size=input_size, **encoder_conf)
    encoder_output_size = encoder.output_size()
    parts = {}
    if uses_predictor:
        # idim is always the encoder width; default it so configs need not repeat it.
        predictor_conf.setdefault("idim", encoder_output_size)
        if predictor_conf["idim"] != encoder_output_size:
            raise ConfigError(
                f"predictor_conf: idim={predictor_conf['idim']} differs from the encoder output size {encoder_output_size}"
            )
        parts["predictor"] = predictor_cls(**predictor_conf)
    decoder = decoder_cls(vocab_size=vocab_size, encoder_output_size=encoder_output_size, **decoder_conf)
    ctc = CTC(odim=vocab_size, encoder_output_size=encoder_output_size, **ctc_conf) if ctc_conf is not None else None
    specaug = specaug_cls(**specaug_conf) if specaug_cls else None
    if seaco_decoder_spec is not None:
        seaco_cls, seaco_conf = seaco_decoder_spec
        inner_dim = model_conf.get("inner_dim", _default(model_cls, "inner_dim"))
        parts["seaco_decoder"] = seaco_cls(vocab_size=vocab_size, encoder_output_size=inner_dim, **seaco_conf)
    model = model_cls(
        encoder=encoder, decoder=decoder, vocab_size=vocab_size, specaug=specaug, ctc=ctc, **parts, **model_conf,
    )
    logger.info(
        "built %s: %s, %d parameters", type(model).__name__,
        " + ".join(type(m).__name__ for m in (encoder, parts.get("predictor"), decoder) if m is not None),
        sum(p.numel() for p in model.parameters()),
    )
    return model


__all__ = ["build_model", "check_conf", "ConfigError", "ENCODERS", "DECODERS", "PREDICTORS", "SPECAUGS", "MODELS"]
