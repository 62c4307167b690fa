"""A FunASR UniASR model dir (random weights from funasr's own class): our text equals
``AutoModel(model=dir).generate(input=wav, decoding_model=mode)`` for fast, normal and offline
(a fresh AutoModel per mode: FunASR keeps the first mode's decoder in its beam search)."""

import copy
import logging

import pytest
import torch

from funasr.models.uniasr.model import UniASR as FunasrUniASR

from funasr_lite.api import SpeechRecognizer
from funasr_configs import funasr_common_sections  # tests/funasr_configs.py
from funasr_dirs import save_funasr_dir  # tests/funasr_dirs.py
from test_funasr_model_dir import corpus, funasr_automodel, wav_paths  # noqa: F401 (fixtures)
from test_infer import TOKENS, write_cmvn_from_waves

logging.getLogger("funasr").setLevel(logging.WARNING)

ENCODER = dict(output_size=32, attention_heads=2, linear_units=64, num_blocks=2, dropout_rate=0.0,
               positional_dropout_rate=0.0, attention_dropout_rate=0.0, input_layer="pe", kernel_size=5,
               sanm_shfit=0, chunk_size=[8, 16], stride=[4, 16], pad_left=[2, 0],
               encoder_att_look_back_factor=[1, 1], decoder_att_look_back_factor=[1, 1])
DECODER = dict(attention_heads=2, linear_units=64, num_blocks=3, att_layer_num=2, dropout_rate=0.0,
               positional_dropout_rate=0.0, self_attention_dropout_rate=0.0, src_attention_dropout_rate=0.0,
               kernel_size=5, concat_embeds=True)


def uniasr_config():
    config = {
        "model": "UniASR",
        "model_conf": {"ctc_weight": 0.0, "predictor_weight": 1.0, "predictor2_weight": 1.0,
                       "decoder_attention_chunk_type": "chunk", "decoder_attention_chunk_type2": "chunk",
                       "loss_weight_model1": 0.5, "lsm_weight": 0.1, "length_normalized_loss": True},
        "encoder": "SANMEncoderChunkOpt", "encoder_conf": dict(ENCODER),
        "encoder2": "SANMEncoderChunkOpt", "encoder2_conf": dict(ENCODER, output_size=24),
        "decoder": "FsmnDecoderSCAMAOpt", "decoder_conf": dict(DECODER),
        "decoder2": "FsmnDecoderSCAMAOpt", "decoder2_conf": dict(DECODER),
        "predictor": "CifPredictorV2", "predictor_conf": {"idim": 32, "threshold": 1.0, "l_order": 1, "r_order": 1},
        "predictor2": "CifPredictorV2", "predictor2_conf": {"idim": 24, "threshold": 1.0, "l_order": 1, "r_order": 1},
        "stride_conv": "stride_conv1d", "stride_conv_conf": {"kernel_size": 2, "stride": 2, "pad": [0, 1]},
        **funasr_common_sections(),
    }
    config.pop("ctc_conf")
    return config


def build_funasr_uniasr(config, tokens, seed=0):
    """funasr's UniASR from a config.yaml dict (input 560), seeded, firing often, saying a while
    before </s> and never <unk>; in eval mode."""
    kwargs = {k: copy.deepcopy(v) for k, v in config.items()
              if k not in ("model", "model_conf", "frontend", "frontend_conf", "tokenizer", "tokenizer_conf",
                           "train_conf", "optim", "optim_conf", "normalize")}
    torch.manual_seed(seed)
    model = FunasrUniASR(input_size=560, vocab_size=len(tokens), **kwargs, **config["model_conf"]).eval()
    with torch.no_grad():
        model.predictor.cif_output.bias.fill_(-0.5)
        model.predictor2.cif_output.bias.fill_(-0.5)
        for decoder in (model.decoder, model.decoder2):
            decoder.output_layer.bias[2] -= 2.0
            decoder.output_layer.bias[tokens.index("<unk>")] = -100.0
    return model


@pytest.fixture(scope="module")
def uniasr_dir(tmp_path_factory, corpus):
    config = uniasr_config()
    return save_funasr_dir(str(tmp_path_factory.mktemp("uniasr")), config, build_funasr_uniasr(config, TOKENS), TOKENS,
                           lambda mvn: write_cmvn_from_waves(mvn, corpus[1].values()))


def assert_off_thresholds(recognizer, wav_paths, mode, margin=2e-4):
    """The CIF count (its floor, round and int + relax bound the search) and every running alpha sum
    (where CIF fires) lie off their thresholds, so the comparison holds on any CPU."""
    from funasr_lite.inference.speech2text import items_from_wav_files

    speech2text = recognizer.speech2text
    for index, item in enumerate(items_from_wav_files(wav_paths)):
        prepared = speech2text.prepare(index, item)
        with torch.no_grad():
            out = recognizer.loaded.model.passes(prepared.model_input[None], torch.tensor([prepared.num_frames]), mode)
        count = float(out.token_num.sum())
        assert min(abs(count - round(count)), abs(count - int(count) - 0.5)) > margin, (item.key, count)
        sums = torch.cumsum(out.alphas[0].double(), 0)[out.alphas[0] > 0]  # where a frame adds weight
        assert float((sums - sums.round()).abs().min()) > margin, item.key


@pytest.mark.parametrize("mode", ["fast", "normal", "offline"])
def test_our_text_equals_automodels_in_each_mode(uniasr_dir, wav_paths, mode):
    ours = SpeechRecognizer.from_model_dir(uniasr_dir, decode_mode="beam", beam_size=5, decoding_model=mode)
    automodel = funasr_automodel(uniasr_dir)  # fresh: FunASR keeps the first call's decoder
    assert_off_thresholds(ours, wav_paths, mode)
    said = 0
    for path in wav_paths:
        expected = automodel.generate(input=path, decoding_model=mode)[0]["text"].replace(" ", "")
        got = ours(path)[0]
        assert got["text"] == expected, path
        assert got.get("timestamp") in (None, [])
        said += len(expected)
    assert said >= 6


def test_greedy_is_beam_one_and_bad_options_are_refused(uniasr_dir, wav_paths):
    greedy = SpeechRecognizer.from_model_dir(uniasr_dir)(wav_paths[0])[0]["text"]
    assert greedy == SpeechRecognizer.from_model_dir(uniasr_dir, decode_mode="beam", beam_size=1)(wav_paths[0])[0]["text"]
    with pytest.raises(Exception, match="decoding_model"):
        SpeechRecognizer.from_model_dir(uniasr_dir, decoding_model="fastest")
    with pytest.raises(Exception, match="UniASR"):
        SpeechRecognizer.from_model_dir(uniasr_dir, decode_mode="ctc_greedy")


def test_infer_decodes_a_uniasr_dir_in_a_chosen_mode(uniasr_dir, wav_paths, capsys):
    from funasr_lite.bin import infer as infer_cli

    rc = infer_cli.main(["--model_dir", uniasr_dir, "--wav", wav_paths[0], "--decode_mode", "beam", "--beam_size", "5",
                         "--decoding_model", "fast"])
    assert rc == 0
    printed = capsys.readouterr().out.strip().split(maxsplit=1)
    expected = SpeechRecognizer.from_model_dir(uniasr_dir, decode_mode="beam", beam_size=5,
                                               decoding_model="fast")(wav_paths[0])[0]["text"]
    assert printed[1:] == ([expected] if expected else [])


def test_an_8khz_dir_decodes_as_automodel(tmp_path, corpus):
    """The seed's 8 kHz UniASR models differ only in their config: fs 8000 (features of 8 kHz audio)."""
    import numpy as np
    import soundfile

    from funasr_lite.frontend.audio import resample_waveform

    config = uniasr_config()
    config["frontend_conf"]["fs"] = 8000
    model = build_funasr_uniasr(config, TOKENS, seed=1)
    model_dir = save_funasr_dir(str(tmp_path / "uniasr8k"), config, model, TOKENS,
                                lambda mvn: write_cmvn_from_waves(mvn, corpus[1].values()))
    paths = []
    for key, wave in sorted(corpus[1].items()):
        paths.append(str(tmp_path / f"{key}_8k.wav"))
        soundfile.write(paths[-1], resample_waveform(wave.astype(np.float32) / 32768.0, 16000, 8000), 8000)
    ours = SpeechRecognizer.from_model_dir(model_dir, decode_mode="beam", beam_size=5)
    assert ours.sample_rate == 8000
    assert_off_thresholds(ours, paths, "normal")
    automodel = funasr_automodel(model_dir)
    said = 0
    for path in paths:
        expected = automodel.generate(input=path, decoding_model="normal")[0]["text"].replace(" ", "")
        assert ours(path)[0]["text"] == expected, path
        said += len(expected)
    assert said >= 3
