"""ParaformerBert model dirs (the seed's speech_paraformerbert_asr_nat-zh-cn-16k-aishell{1,2} academic
models: FunASR 0.x's class, Conformer encoder + SAN decoder + CIF, model: paraformer_bert). funasr
1.x has no ParaformerBert, and FunASR 0.x decoded it with Paraformer's inference (pro_nn is a
training-only head), so the oracle is AutoModel on a Paraformer dir of the same weights: our
ParaformerBert dir (those weights + pro_nn) decodes to its text."""

import copy

import torch
import yaml

from funasr.models.paraformer.model import Paraformer as FunasrParaformer

from funasr_lite.api import SpeechRecognizer
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.speech2text import items_from_wav_files
from funasr_dirs import assert_off_cif_thresholds, build_funasr_model, save_funasr_dir
from test_commandword_model_dir import TOKENS, tiny_commandword_config
from test_funasr_model_dir import corpus, funasr_automodel, wav_paths  # noqa: F401 (fixtures)
from test_infer import write_cmvn_from_waves


def test_a_paraformer_bert_dir_decodes_to_automodels_text_of_the_same_weights(tmp_path, corpus, wav_paths):  # noqa: F811
    config = tiny_commandword_config()
    config["model_conf"]["share_embedding"] = False
    config["encoder_conf"]["num_blocks"] = 2
    model = build_funasr_model(FunasrParaformer, config, len(TOKENS), seed=5, alpha_bias=-0.9, input_size=80)
    write_cmvn = lambda mvn: write_cmvn_from_waves(mvn, corpus[1].values(), lfr_m=1, lfr_n=1)  # noqa: E731
    plain_dir = save_funasr_dir(str(tmp_path / "paraformer"), config, model, TOKENS, write_cmvn)

    bert_config = copy.deepcopy(config)
    bert_config["model"] = "paraformer_bert"  # FunASR 0.x's config spelling
    bert_config["model_conf"].update(embeds_id=2, embed_dims=768, embeds_loss_weight=2.0)
    state = dict(model.state_dict())
    torch.manual_seed(6)
    state["pro_nn.weight"] = torch.randn(768, config["encoder_conf"]["output_size"]) * 0.05
    state["pro_nn.bias"] = torch.zeros(768)
    bert_dir = tmp_path / "paraformer_bert"
    save_funasr_dir(str(bert_dir), bert_config, model, TOKENS, write_cmvn)
    torch.save(state, bert_dir / "model.pt")  # strict loading: pro_nn must be there, and is

    loaded = load_model_dir(str(bert_dir))
    assert type(loaded.model).__name__ == "ParaformerBert"
    assert torch.equal(loaded.model.pro_nn.weight, state["pro_nn.weight"])
    assert_off_cif_thresholds(loaded, items_from_wav_files(wav_paths))
    ours = SpeechRecognizer.from_model_dir(str(bert_dir))
    automodel = funasr_automodel(plain_dir)
    said = 0
    for wav in wav_paths:
        expected = automodel.generate(input=wav)[0]
        got = ours(wav)[0]
        assert got["text"] == expected["text"].replace(" ", ""), wav
        said += len(got["text"])
    assert said >= 5
    assert yaml.safe_load((bert_dir / "config.yaml").read_text())["model"] == "paraformer_bert"
