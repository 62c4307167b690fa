"""CT-Transformer parity with funasr (the oracle) on random weights: the same parameter names,
funasr's state dict loads strictly, the same logits, and FunASR's windowed inference over long
text gives the same labels and text; a model dir that funasr's AutoModel reads loads through
``Punctuator.from_model_dir`` and punctuates the same."""

import json
import random

import pytest
import torch
import yaml

import funasr.models.sanm.encoder  # noqa: F401  (registers funasr's SANMEncoder)
from funasr.models.ct_transformer.model import CTTransformer as FunasrCTTransformer
from funasr.tokenizer.char_tokenizer import CharTokenizer as FunasrCharTokenizer

from funasr_lite import Punctuator as ExportedPunctuator
from funasr_lite.models.punc import CTTransformer, Punctuator, split_words

PUNC_LIST = ["<unk>", "_", "，", "。", "？", "、"]
ENCODER_CONF = dict(
    input_size=32, output_size=32, attention_heads=4, linear_units=64, num_blocks=3, dropout_rate=0.1,
    positional_dropout_rate=0.1, attention_dropout_rate=0.0, input_layer="pe",
    pos_enc_class="SinusoidalPositionEncoder", normalize_before=True, kernel_size=11, sanm_shfit=0,
    selfattention_layer_type="sanm", padding_idx=0,
)
MODEL_CONF = dict(punc_list=PUNC_LIST, punc_weight=[1.0] * 6, embed_unit=32, att_unit=32, dropout_rate=0.1,
                  ignore_id=0, sentence_end_id=3)
CHARS = [chr(0x4E00 + i) for i in range(120)]
TOKENS = ["<blank>", "<s>", "</s>", *CHARS, "hello", "world", "A1", "<unk>"]


def funasr_model(seed=0, bias=None):
    torch.manual_seed(seed)
    model = FunasrCTTransformer(encoder="SANMEncoder", encoder_conf=ENCODER_CONF, vocab_size=len(TOKENS), **MODEL_CONF)
    if bias is not None:  # steer the random classifier towards a label mix that exercises the windowing
        with torch.no_grad():
            model.decoder.bias.copy_(torch.tensor(bias))
    return model.eval()


def our_model(theirs):
    ours = CTTransformer(len(TOKENS), encoder="SANMEncoder", encoder_conf=ENCODER_CONF, **MODEL_CONF)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours.eval()


def random_text(seed, length):
    """Characters (some outside the vocabulary) with a few ASCII words, spaces between some."""
    rng = random.Random(seed)
    pieces = []
    for _ in range(length):
        roll = rng.random()
        if roll < 0.04:
            pieces.append(" " + rng.choice(["hello", "world", "A1", "zzz"]) + " ")
        elif roll < 0.07:
            pieces.append(rng.choice("鱻龘"))  # not in the token list -> <unk>
        else:
            pieces.append(rng.choice(CHARS))
    return "".join(pieces)


def funasr_inference(model, text, split_size):
    tokenizer = FunasrCharTokenizer(token_list=TOKENS, unk_symbol="<unk>")
    results, _ = model.inference([text], key=["utt"], tokenizer=tokenizer, device="cpu", split_size=split_size)
    return results[0]["punc_array"].tolist(), results[0]["text"]


def test_same_parameter_names_and_shapes():
    theirs, ours = funasr_model(), CTTransformer(len(TOKENS), encoder_conf=ENCODER_CONF, **MODEL_CONF)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
           {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


def test_logits_match_funasr_on_random_ids():
    theirs = funasr_model(seed=3)
    ours = our_model(theirs)
    torch.manual_seed(1)
    ids = torch.randint(0, len(TOKENS), (3, 41))
    lengths = torch.tensor([41, 30, 7])
    with torch.no_grad():
        expected, _ = theirs.punc_forward(ids, lengths)
        logits = ours(ids, lengths)
    assert logits.shape == (3, 41, len(PUNC_LIST))
    for b, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(logits[b, :length], expected[b, :length], atol=1e-5, rtol=1e-5)


def test_training_loss_matches_funasr():
    """Class-weighted cross entropy over valid tokens per token (funasr's forward in train mode
    returns it; dropout is 0 so both compute the same activations)."""
    encoder_conf = dict(ENCODER_CONF, dropout_rate=0.0, positional_dropout_rate=0.0)
    weights = [1.0, 0.5, 2.0, 3.0, 1.5, 1.0]
    torch.manual_seed(4)
    theirs = FunasrCTTransformer(encoder="SANMEncoder", encoder_conf=encoder_conf, vocab_size=len(TOKENS),
                                 **{**MODEL_CONF, "punc_weight": weights})
    theirs.punc_weight = torch.tensor(weights)  # funasr's trainer makes the list a tensor
    ours = CTTransformer(len(TOKENS), encoder_conf=encoder_conf, **{**MODEL_CONF, "punc_weight": weights})
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.train(), ours.train()
    torch.manual_seed(2)
    ids, lengths = torch.randint(3, len(TOKENS), (2, 15)), torch.tensor([15, 9])
    labels = torch.randint(1, 6, (2, 15))
    labels[1, 9:] = 0  # padding = ignore_id
    expected, _, weight = theirs(ids, labels, lengths, lengths)
    total, count = ours.loss(ids, lengths, labels)
    assert int(count) == int(weight) == 24
    torch.testing.assert_close(total / count, expected.reshape(()), atol=1e-5, rtol=1e-5)


# bias of the classifier: <unk> never, a mix of marks; no sentence end at all (the carry grows past
# 200 tokens and is cut at a comma); <unk> often (labels only: FunASR writes "<unk>" into the text)
MIXED = [-30.0, 1.0, 0.0, -0.5, -1.0, -0.5]
NO_SENTENCE_END = [-30.0, 1.5, -0.3, -30.0, -30.0, 0.0]
WITH_UNK = [0.5, 1.0, 0.0, -0.5, -1.0, -0.5]


@pytest.mark.parametrize("bias,split_size,seed", [(MIXED, 20, 0), (MIXED, 7, 1), (NO_SENTENCE_END, 20, 2),
                                                  (NO_SENTENCE_END, 15, 6), (WITH_UNK, 20, 3), (MIXED, 500, 4)])
def test_windowed_inference_matches_funasr(bias, split_size, seed):
    theirs = funasr_model(seed=seed, bias=bias)
    punctuator = Punctuator(our_model(theirs), TOKENS, split_size=split_size)
    text = random_text(seed, 700)
    expected_labels, expected_text = funasr_inference(theirs, text, split_size)
    tokens = split_words(text)
    labels = punctuator.label_tokens(tokens)
    assert len(labels) == len(tokens)
    assert labels == expected_labels
    assert punctuator.punctuate_tokens(tokens) == ["" if PUNC_LIST[i] in ("_", "<unk>") else PUNC_LIST[i]
                                                   for i in expected_labels]
    if bias is WITH_UNK:
        assert 0 in expected_labels  # the case is exercised
    else:
        assert punctuator(text) == expected_text
    if bias is NO_SENTENCE_END:  # the forced cut at a comma happened
        assert 3 in expected_labels[:-1]


def test_short_and_empty_text():
    theirs = funasr_model(seed=5, bias=MIXED)
    punctuator = Punctuator(our_model(theirs), TOKENS)
    for text in ["一", "一丁", "hello world", "一丁七 hello"]:
        expected_labels, expected_text = funasr_inference(theirs, text, 20)
        assert punctuator.label_tokens(split_words(text)) == expected_labels
        assert punctuator(text) == expected_text
    assert punctuator("") == "" and punctuator("   ") == ""
    assert punctuator.punctuate_tokens([]) == []
    marks = punctuator.punctuate_tokens(["一", ""])  # an empty token is labelled, not a crash
    assert len(marks) == 2 and marks[-1] == "。"


def write_funasr_model_dir(model_dir, theirs):
    """The layout of FunASR's released punc_ct-transformer_zh-cn-common-vocab272727-pytorch."""
    config = {"model": "CTTransformer", "model_conf": MODEL_CONF, "encoder": "SANMEncoder",
              "encoder_conf": ENCODER_CONF, "tokenizer": "CharTokenizer", "tokenizer_conf": {"unk_symbol": "<unk>"}}
    (model_dir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    (model_dir / "tokens.json").write_text(json.dumps(TOKENS, ensure_ascii=False), encoding="utf-8")
    torch.save(theirs.state_dict(), model_dir / "model.pt")


def test_funasr_model_dir_loads_and_matches_automodel(tmp_path):
    from funasr import AutoModel

    theirs = funasr_model(seed=7, bias=MIXED)
    write_funasr_model_dir(tmp_path, theirs)
    text = random_text(11, 300)
    auto = AutoModel(model=str(tmp_path), device="cpu", disable_update=True, disable_pbar=True, log_level="ERROR")
    expected = auto.generate(input=text)[0]
    punctuator = ExportedPunctuator.from_model_dir(tmp_path)
    assert isinstance(punctuator, Punctuator)
    assert punctuator(text) == expected["text"]
    assert punctuator.label_tokens(split_words(text)) == expected["punc_array"].tolist()


def test_bad_model_dirs_are_named(tmp_path):
    from funasr_lite.models.punc import PuncModelDirError

    with pytest.raises(PuncModelDirError, match="no config.yaml"):
        Punctuator.from_model_dir(tmp_path)
    write_funasr_model_dir(tmp_path, funasr_model())
    (tmp_path / "tokens.json").unlink()
    with pytest.raises(PuncModelDirError, match="no token list"):
        Punctuator.from_model_dir(tmp_path)
    (tmp_path / "tokens.json").write_text(json.dumps(TOKENS[:-5] + ["<unk>"]), encoding="utf-8")
    with pytest.raises(Exception, match="model.pt"):  # vocabulary size does not fit the weights
        Punctuator.from_model_dir(tmp_path)
    (tmp_path / "config.yaml").write_text("model: Paraformer\n", encoding="utf-8")
    with pytest.raises(PuncModelDirError, match="CTTransformer"):
        Punctuator.from_model_dir(tmp_path)
