"""build_model: the paraformer-large contract, config validation errors, checkpoint loading."""

import copy

import pytest
import torch

import funasr.models.paraformer.cif_predictor  # noqa: F401  (registers funasr's classes)
import funasr.models.paraformer.decoder  # noqa: F401
import funasr.models.sanm.encoder  # noqa: F401
from funasr.models.paraformer.model import Paraformer as FunasrParaformer

import funasr_lite.models as models
from funasr_lite.models import ConfigError, build_model
from funasr_lite.models import load as models_load
from funasr_lite.models.load import CheckpointError, load_model_weights, load_state_dict_file

LARGE_CONFIG = {
    "model": "Paraformer",
    "model_conf": dict(ctc_weight=0.0, lsm_weight=0.1, length_normalized_loss=True, predictor_weight=1.0,
                       predictor_bias=1, sampling_ratio=0.75),
    "encoder": "SANMEncoder",
    "encoder_conf": dict(output_size=512, attention_heads=4, linear_units=2048, num_blocks=50, dropout_rate=0.1,
                         positional_dropout_rate=0.1, attention_dropout_rate=0.1, input_layer="pe",
                         pos_enc_class="SinusoidalPositionEncoder", normalize_before=True, kernel_size=11,
                         sanm_shfit=0, selfattention_layer_type="sanm"),
    "decoder": "ParaformerSANMDecoder",
    "decoder_conf": dict(attention_heads=4, linear_units=2048, num_blocks=16, dropout_rate=0.1,
                         positional_dropout_rate=0.1, self_attention_dropout_rate=0.1,
                         src_attention_dropout_rate=0.1, att_layer_num=16, kernel_size=11, sanm_shfit=0),
    "predictor": "CifPredictorV2",
    "predictor_conf": dict(idim=512, threshold=1.0, l_order=1, r_order=1, tail_threshold=0.45),
    "frontend": "WavFrontend",
    "frontend_conf": dict(fs=16000, window="hamming", n_mels=80, frame_length=25, frame_shift=10, lfr_m=7, lfr_n=6),
    "vocab_size": 8404,
}


def shapes(model):
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def test_paraformer_large_has_funasr_parameter_count_and_keys():
    # Built on the meta device: shapes and counts without allocating ~1 GB per model.
    with torch.device("meta"):
        ours = build_model(copy.deepcopy(LARGE_CONFIG))
        funasr_kwargs = {k: copy.deepcopy(v) for k, v in LARGE_CONFIG.items() if k not in ("model", "model_conf")}
        funasr_kwargs.update(LARGE_CONFIG["model_conf"], input_size=560)
        theirs = FunasrParaformer(**funasr_kwargs)
    assert sum(p.numel() for p in ours.parameters()) == 220_084_533
    assert shapes(ours) == shapes(theirs)
    assert shapes(ours)["encoder.encoders0.0.self_attn.linear_q_k_v.weight"] == (1536, 560)
    assert shapes(ours)["decoder.decoders.15.feed_forward.norm.weight"] == (2048,)


@pytest.mark.parametrize("name", ["sanm", "SANMEncoder"])
def test_registry_aliases_build_the_same_encoder(tiny_config, name):
    tiny_config["encoder"] = name
    assert type(build_model(tiny_config).encoder) is models.SANMEncoder


@pytest.mark.parametrize("name,cls_name", [("cif_predictor", "CifPredictor"), ("CifPredictorV2", "CifPredictorV2")])
def test_registry_predictors(tiny_config, name, cls_name):
    tiny_config["predictor"] = name
    assert type(build_model(tiny_config).predictor).__name__ == cls_name


def test_input_and_vocab_size_derived_from_frontend_and_token_list(tiny_config):
    del tiny_config["input_size"], tiny_config["vocab_size"]
    tiny_config["frontend_conf"] = {"n_mels": 8, "lfr_m": 3}
    tiny_config["token_list"] = ["<blank>", "<s>", "</s>", "a", "b", "<unk>"]
    del tiny_config["predictor_conf"]["idim"]  # defaults to the encoder width
    model = build_model(tiny_config)
    assert model.encoder.encoders0[0].norm1.weight.shape == (24,)
    assert model.decoder.output_layer.weight.shape == (6, 32)
    assert model.predictor.cif_output.weight.shape == (1, 32)


def test_ctc_is_built_only_with_positive_weight(tiny_config):
    assert build_model(tiny_config).ctc.ctc_lo.weight.shape == (12, 32)
    tiny_config["model_conf"]["ctc_weight"] = 0.0
    assert "ctc.ctc_lo.weight" not in build_model(tiny_config).state_dict()


def test_unknown_key_names_key_component_and_suggestion(tiny_config):
    tiny_config["encoder_conf"]["num_blokcs"] = 3
    with pytest.raises(ConfigError) as error:
        build_model(tiny_config)
    assert "encoder_conf: unknown key 'num_blokcs' for SANMEncoder; did you mean 'num_blocks'?" in str(error.value)


def test_unknown_model_conf_key(tiny_config):
    tiny_config["model_conf"]["sampling_ration"] = 0.4
    with pytest.raises(ConfigError, match="model_conf: unknown key 'sampling_ration' for Paraformer; did you mean 'sampling_ratio'"):
        build_model(tiny_config)


@pytest.mark.parametrize("section,key,value,expected", [
    ("encoder_conf", "num_blocks", "2", "int"),
    ("encoder_conf", "num_blocks", 2.5, "int"),
    ("decoder_conf", "dropout_rate", "0.1", "float"),
    ("predictor_conf", "tail_threshold", True, "float"),
    ("model_conf", "length_normalized_loss", 1, "bool"),
])
def test_wrong_type_names_key_and_expected_type(tiny_config, section, key, value, expected):
    tiny_config[section][key] = value
    with pytest.raises(ConfigError) as error:
        build_model(tiny_config)
    message = str(error.value)
    assert message.startswith(f"{section}: key {key!r}") and f"expects {expected}" in message


def test_int_is_accepted_where_a_float_is_expected(tiny_config):
    tiny_config["predictor_conf"]["noise_threshold"] = 0
    tiny_config["decoder_conf"]["sanm_shfit"] = None  # Optional[int]
    build_model(tiny_config)


def test_unknown_component_lists_valid_names(tiny_config):
    tiny_config["encoder"] = "sanmm"
    with pytest.raises(ConfigError) as error:
        build_model(tiny_config)
    assert "unknown encoder 'sanmm'" in str(error.value)
    assert "SANMEncoder" in str(error.value) and "conformer" in str(error.value)


def test_config_errors_are_raised_before_anything_is_built(tiny_config, monkeypatch):
    built = []

    class SpyEncoder(models.SANMEncoder):
        def __init__(self, **kwargs):
            built.append("encoder")
            super().__init__(**kwargs)

    monkeypatch.setitem(models.ENCODERS, "spy", SpyEncoder)
    tiny_config["encoder"] = "spy"
    tiny_config["decoder_conf"]["kernel_sise"] = 5
    with pytest.raises(ConfigError, match="decoder_conf: unknown key 'kernel_sise'"):
        build_model(tiny_config)
    assert built == []


# ----------------------------------------------------------------------------- checkpoint loading
def test_load_unwraps_and_strips_module_prefix(tiny_config, tmp_path):
    source = build_model(tiny_config)
    path = tmp_path / "model.pt"
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    assert set(load_state_dict_file(str(path))) == set(source.state_dict())
    torch.manual_seed(1)
    target = build_model(tiny_config)
    load_model_weights(target, str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_load_reports_shape_mismatches_with_file_name(tiny_config, tmp_path):
    path = tmp_path / "model.pb"
    torch.save({"state_dict": build_model(tiny_config).state_dict()}, path)
    tiny_config["vocab_size"] = 13
    with pytest.raises(CheckpointError) as error:
        load_model_weights(build_model(tiny_config), str(path))
    message = str(error.value)
    assert str(path) in message and "shape mismatches" in message
    assert "decoder.output_layer.weight: checkpoint (12, 32) vs model (13, 32)" in message


def test_load_lists_missing_and_unexpected_keys_with_counts(tiny_config, tmp_path):
    path = tmp_path / "model.pt"
    state = build_model(tiny_config).state_dict()
    for key in [k for k in state if k.startswith("encoder.encoders.")]:
        state[key.replace("encoder.encoders.", "encoder.layers.")] = state.pop(key)
    torch.save(state, path)
    model = build_model(tiny_config)
    with pytest.raises(CheckpointError) as error:
        load_model_weights(model, str(path))
    message = str(error.value)
    assert "13 missing keys: encoder.encoders.0." in message and "(8 more)" in message
    assert "13 unexpected keys: encoder.layers.0." in message
    missing, unexpected = load_model_weights(model, str(path), strict=False)
    assert len(missing) == 13 and len(unexpected) == 13


def test_load_truncated_file_names_it(tiny_config, tmp_path):
    path = tmp_path / "model.pt"
    torch.save(build_model(tiny_config).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.pt: cannot load checkpoint"):
        load_state_dict_file(str(path))
    with pytest.raises(CheckpointError, match=r"absent\.pt: no such checkpoint"):
        load_state_dict_file(str(tmp_path / "absent.pt"))
    # one reader and one error class for models, training and LMs
    from funasr_lite.train import checkpoint

    assert checkpoint.CheckpointError is CheckpointError
    assert checkpoint.load_checkpoint is models_load.load_checkpoint
