"""config.yaml sections as FunASR's released model dirs carry them, for the tests that build such dirs
(with funasr's own classes as the oracle): one copy of FunASR's section names and defaults."""


def funasr_common_sections(lfr_m: int = 7, lfr_n: int = 6, dither: float = 0.0, lr: float = 0.0005) -> dict:
    """The sections every FunASR ASR config.yaml has: frontend, training, tokenizer, CTC."""
    return {
        "frontend": "WavFrontend",
        "frontend_conf": {"fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                          "lfr_m": lfr_m, "lfr_n": lfr_n, "dither": dither},
        "train_conf": {"accum_grad": 1, "grad_clip": 5, "max_epoch": 150, "keep_nbest_models": 10},
        "optim": "adam", "optim_conf": {"lr": lr},
        "tokenizer": "CharTokenizer", "tokenizer_conf": {"unk_symbol": "<unk>"},
        "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
        "normalize": None,
    }


def funasr_paraformer_config(encoder_conf: dict, decoder_conf: dict, dither: float = 0.0) -> dict:
    """A SAN-M Paraformer (paraformer-large's layout) config.yaml with FunASR's class names; the token
    list and am.mvn are files in the dir, not named here (as in a ModelScope dir)."""
    return {
        "encoder": "SANMEncoder", "encoder_conf": dict(encoder_conf),
        "decoder": "ParaformerSANMDecoder", "decoder_conf": dict(decoder_conf),
        "predictor": "CifPredictorV2",
        "predictor_conf": {"idim": encoder_conf["output_size"], "threshold": 1.0, "l_order": 1, "r_order": 1,
                           "tail_threshold": 0.45},
        "model": "Paraformer",
        "model_conf": {"ctc_weight": 0.0, "lsm_weight": 0.1, "length_normalized_loss": True,
                       "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.75},
        "specaug": "SpecAugLFR",
        "specaug_conf": {"apply_time_warp": False, "time_warp_window": 5, "time_warp_mode": "bicubic",
                         "apply_freq_mask": True, "freq_mask_width_range": [0, 30], "lfr_rate": 6,
                         "num_freq_mask": 1, "apply_time_mask": True, "time_mask_width_range": [0, 12],
                         "num_time_mask": 1},
        **funasr_common_sections(dither=dither),
    }


def funasr_sanm_confs(output_size: int, linear_units: int, kernel_size: int) -> tuple:
    """(encoder_conf, decoder_conf) of a small SAN-M Paraformer with the keys FunASR's model dirs list
    (our classes accept them for compatibility); 2 blocks each, 4 heads."""
    encoder_conf = {
        "output_size": output_size, "attention_heads": 4, "linear_units": linear_units, "num_blocks": 2,
        "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1, "input_layer": "pe",
        "pos_enc_class": "SinusoidalPositionEncoder", "normalize_before": True, "kernel_size": kernel_size,
        "sanm_shfit": 0, "selfattention_layer_type": "sanm",
    }
    decoder_conf = {
        "attention_heads": 4, "linear_units": linear_units, "num_blocks": 2, "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.1, "src_attention_dropout_rate": 0.1,
        "att_layer_num": 2, "kernel_size": kernel_size, "sanm_shfit": 0,
    }
    return encoder_conf, decoder_conf


def tiny_paraformer_config(d_model: int, heads: int, units: int, blocks: int, ctc_weight: float = 0.3,
                           sample_rate: int = 16000) -> dict:
    """A FunASR-schema config.yaml for a tiny SAN-M Paraformer (CIF v2, LFR 7/6, 80 mel bins) whose
    token list and am.mvn are files beside it (``tokens.txt``, ``am.mvn``)."""
    return {
        "model": "Paraformer",
        "model_conf": {"ctc_weight": ctc_weight, "lsm_weight": 0.1, "length_normalized_loss": False,
                       "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": 0.4},
        "encoder": "SANMEncoder",
        "encoder_conf": {"output_size": d_model, "attention_heads": heads, "linear_units": units, "num_blocks": blocks,
                         "dropout_rate": 0.1, "positional_dropout_rate": 0.1, "attention_dropout_rate": 0.1,
                         "input_layer": "pe", "kernel_size": 5, "sanm_shfit": 0},
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": {"attention_heads": heads, "linear_units": units, "num_blocks": blocks, "att_layer_num": blocks,
                         "dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
                         "src_attention_dropout_rate": 0.1, "kernel_size": 5, "sanm_shfit": 0},
        "predictor": "CifPredictorV2",
        "predictor_conf": {"idim": d_model, "l_order": 1, "r_order": 1, "threshold": 1.0, "tail_threshold": 0.45},
        "ctc_conf": {"dropout_rate": 0.0, "ctc_type": "builtin", "reduce": True, "ignore_nan_grad": True},
        "frontend": "WavFrontend",
        "frontend_conf": {"fs": sample_rate, "window": "hamming", "n_mels": 80, "frame_length": 25,
                          "frame_shift": 10, "lfr_m": 7, "lfr_n": 6, "dither": 0.0, "cmvn_file": "am.mvn"},
        "tokenizer": "CharTokenizer",
        "tokenizer_conf": {"token_list": "tokens.txt", "unk_symbol": "<unk>"},
    }
