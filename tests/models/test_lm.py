"""TransformerLM: causality, FunASR checkpoint parity, scoring paths, training, resume."""

import math
import os

import pytest
import torch

from funasr_lite.bin import train_lm as train_lm_cli
from funasr_lite.models.lm import build_lm, load_lm
from funasr_lite.models.lm.transformer_lm import TransformerLM, strip_lm_prefix

VOCAB = 12
TINY_LM_CONF = dict(embed_unit=8, att_unit=16, head=4, unit=32, layer=2, dropout_rate=0.0)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def tiny_lm(pos_enc="sinusoidal", **overrides) -> TransformerLM:
    return TransformerLM(VOCAB, **{**TINY_LM_CONF, "pos_enc": pos_enc, **overrides}).eval()


def random_prefixes(num: int, length: int) -> torch.Tensor:
    prefixes = torch.randint(3, VOCAB, (num, length))
    prefixes[:, 0] = 1
    return prefixes


@pytest.mark.parametrize("pos_enc", [None, "sinusoidal"])
def test_changing_a_future_token_leaves_earlier_log_probs_unchanged(pos_enc):
    model = tiny_lm(pos_enc)
    inputs = random_prefixes(2, 7)
    changed = inputs.clone()
    changed[:, 4] = torch.where(inputs[:, 4] == 5, 6, 5)
    before, after = model.log_probs(inputs), model.log_probs(changed)
    torch.testing.assert_close(before[:, :4], after[:, :4], rtol=0, atol=0)
    assert (before[:, 4:] - after[:, 4:]).abs().max() > 1e-4  # the change is seen from there on


def _funasr_transformer_lm(pos_enc):
    """FunASR's TransformerLM assembled from its parts (its own module imports a path that
    no longer exists in funasr 1.4): Embedding -> TransformerEncoder_lm -> Linear."""
    from funasr.models.language_model.transformer_encoder import TransformerEncoder_lm
    from funasr.models.transformer.embedding import PositionalEncoding

    class FunasrLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(VOCAB, TINY_LM_CONF["embed_unit"])
            position = PositionalEncoding if pos_enc == "sinusoidal" else (lambda *a, **k: torch.nn.Sequential())
            self.encoder = TransformerEncoder_lm(
                idim=TINY_LM_CONF["embed_unit"], attention_dim=TINY_LM_CONF["att_unit"],
                attention_heads=TINY_LM_CONF["head"], linear_units=TINY_LM_CONF["unit"],
                num_blocks=TINY_LM_CONF["layer"], dropout_rate=0.0, input_layer="linear", pos_enc_class=position)
            self.decoder = torch.nn.Linear(TINY_LM_CONF["att_unit"], VOCAB)

        def forward(self, ys):
            size = ys.size(1)
            mask = (ys != 0).unsqueeze(1) & torch.ones(size, size, dtype=torch.bool).tril().unsqueeze(0)
            hidden, _ = self.encoder(self.embed(ys), mask)
            return torch.log_softmax(self.decoder(hidden), dim=-1)

    return FunasrLM().eval()


@pytest.mark.parametrize("pos_enc", [None, "sinusoidal"])
def test_funasr_lm_checkpoint_loads_and_matches(pos_enc):
    oracle = _funasr_transformer_lm(pos_enc)
    with torch.no_grad():
        for parameter in oracle.parameters():  # LayerNorms away from their 1/0 init
            parameter.add_(0.1 * torch.randn_like(parameter))
    checkpoint = {"lm." + key: value for key, value in oracle.state_dict().items()}  # ESPnet/FunASR layout
    model = tiny_lm(pos_enc)
    model.load_state_dict(strip_lm_prefix(checkpoint), strict=True)
    inputs = random_prefixes(3, 9)
    with torch.no_grad():
        torch.testing.assert_close(model.log_probs(inputs), oracle(inputs), rtol=1e-5, atol=1e-5)


def test_score_and_incremental_score_match_full_log_probs():
    model = tiny_lm()
    prefixes = random_prefixes(3, 6)
    lengths = torch.tensor([6, 3, 1])
    scores = model.score(prefixes, lengths)
    for row, length in enumerate(lengths.tolist()):
        expected = model.log_probs(prefixes[row : row + 1, :length])[0, -1]
        torch.testing.assert_close(scores[row], expected)
    cache = None
    for length in range(1, 7):
        step_logp, cache = model.score_step(prefixes[:, :length], cache)
        torch.testing.assert_close(step_logp, model.log_probs(prefixes[:, :length])[:, -1], rtol=1e-5, atol=1e-6)
    # Reordered rows keep matching.
    rows = torch.tensor([2, 2, 0])
    reordered = TransformerLM.select_cache(cache, rows)
    extended = torch.cat([prefixes[rows], torch.tensor([[4], [5], [6]])], dim=1)
    step_logp, _ = model.score_step(extended, reordered)
    torch.testing.assert_close(step_logp, model.log_probs(extended)[:, -1], rtol=1e-5, atol=1e-6)


def test_forward_nll_is_the_sentence_log_probability_with_eos():
    model = tiny_lm()
    ys = torch.tensor([[5, 7, 3, 9], [4, 4, 0, 0]])
    lengths = torch.tensor([4, 2])
    nll, counts = model(ys, lengths)
    assert counts.tolist() == [5, 3]
    for row in range(2):
        sentence = ys[row, : lengths[row]].tolist()
        expected = 0.0
        for i, token in enumerate(sentence + [2]):  # </s> = 2 ends the sentence
            prefix = torch.tensor([[1] + sentence[:i]])
            expected -= model.score(prefix, torch.tensor([prefix.size(1)]))[0, token].item()
        assert nll[row].item() == pytest.approx(expected, rel=1e-5)


# ---------------------------------------------------------------- training

CORPUS = ["甲乙丙丁", "乙丙丁甲乙", "丙丁甲", "丁甲乙丙丁甲"]


def _write_corpus(tmp_path):
    tokens = ["<blank>", "<s>", "</s>", "丁", "丙", "乙", "甲", "<unk>"]
    (tmp_path / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    lines = [f"utt{i:03d} {CORPUS[i % len(CORPUS)]}" for i in range(40)]
    (tmp_path / "text").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "valid").write_text("v1 甲乙丙丁\nv2 丙丁甲\n", encoding="utf-8")
    config = ("lm: transformer\nlm_conf: {embed_unit: 16, att_unit: 32, head: 4, unit: 64, layer: 2, "
              "dropout_rate: 0.1, pos_enc: sinusoidal}\noptim: adam\noptim_conf: {lr: 0.005}\n"
              "scheduler: constantlr\ntrain_conf: {max_epoch: 6, batch_tokens: 60, log_interval: 1000}\nseed: 3\n")
    (tmp_path / "lm.yaml").write_text(config, encoding="utf-8")


def _train(tmp_path, out, *overrides):
    return train_lm_cli.train_lm(str(tmp_path / "text"), str(tmp_path / "tokens.txt"), str(tmp_path / out),
                                 str(tmp_path / "lm.yaml"), str(tmp_path / "valid"), list(overrides))


def test_training_on_a_repeated_corpus_lowers_perplexity(tmp_path, capsys):
    _write_corpus(tmp_path)
    exit_code = train_lm_cli.main([
        "--text", str(tmp_path / "text"), "--token_list", str(tmp_path / "tokens.txt"),
        "--valid_text", str(tmp_path / "valid"), "--output_dir", str(tmp_path / "exp"),
        "--config", str(tmp_path / "lm.yaml"), "++train_conf.max_epoch=8"])
    assert exit_code == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(printed) == 8
    valid_ppl = [float(line.split("valid ppl ")[1].split(",")[0]) for line in printed]
    # Baseline: a unigram model of the training text (</s> included) on the valid sentences.
    train_tokens = [ch for i in range(40) for ch in CORPUS[i % len(CORPUS)] + "$"]
    valid_tokens = [ch for sentence in ("甲乙丙丁", "丙丁甲") for ch in sentence + "$"]
    unigram_nll = -sum(math.log(train_tokens.count(ch) / len(train_tokens)) for ch in valid_tokens)
    unigram_ppl = math.exp(unigram_nll / len(valid_tokens))
    last_ppl = valid_ppl[-1]
    assert unigram_ppl > 4.0 and last_ppl < 0.5 * unigram_ppl and last_ppl < valid_ppl[0]
    exp = tmp_path / "exp"
    assert {"config.yaml", "model.pt", "train.log", "epoch_7.pt", "epoch_8.pt"} <= set(os.listdir(exp))
    assert "epoch_1.pt" not in os.listdir(exp)  # keep_checkpoints: 2
    assert "valid ppl" in (exp / "train.log").read_text(encoding="utf-8")
    # The trained model predicts the corpus: after "甲乙丙" comes "丁".
    model = load_lm(exp / "config.yaml")
    prefix = torch.tensor([[1, 6, 5, 4]])
    assert model.score(prefix, torch.tensor([4]))[0].argmax().item() == 3
    # A sentence's perplexity under the model, recomputed here from its next-token scores.
    nll, counts = model(torch.tensor([[6, 5, 4, 3]]), torch.tensor([4]))
    assert math.exp(nll.item() / counts.item()) < last_ppl * 1.5


def test_resume_continues_to_the_same_model(tmp_path):
    _write_corpus(tmp_path)
    straight = _train(tmp_path, "straight", "++train_conf.max_epoch=3")
    first = _train(tmp_path, "resumed", "++train_conf.max_epoch=2")
    resumed = _train(tmp_path, "resumed", "++train_conf.max_epoch=3")
    assert [e["epoch"] for e in first["epochs"]] == [1, 2]
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]
    assert "resumed from" in (tmp_path / "resumed" / "train.log").read_text(encoding="utf-8")
    straight_state = torch.load(tmp_path / "straight" / "epoch_3.pt", weights_only=True)
    resumed_state = torch.load(tmp_path / "resumed" / "epoch_3.pt", weights_only=True)
    for key, value in straight_state["model"].items():
        torch.testing.assert_close(resumed_state["model"][key], value, rtol=0, atol=0)
    assert resumed["epochs"][-1]["valid_ppl"] == pytest.approx(straight["epochs"][-1]["valid_ppl"], rel=1e-9)
    # A changed model config is refused instead of silently mixing runs.
    with pytest.raises(ValueError, match="lm_conf"):
        _train(tmp_path, "resumed", "++train_conf.max_epoch=4", "++lm_conf.layer=3")


def test_non_finite_loss_is_skipped_and_counted(tmp_path, monkeypatch):
    _write_corpus(tmp_path)
    real_forward = TransformerLM.forward
    calls = {"n": 0}

    def forward_with_one_nan(self, ys, lengths):
        nll, counts = real_forward(self, ys, lengths)
        calls["n"] += 1
        if self.training and calls["n"] == 2:
            nll = nll * float("nan")
        return nll, counts

    monkeypatch.setattr(TransformerLM, "forward", forward_with_one_nan)
    result = _train(tmp_path, "exp", "++train_conf.max_epoch=1")
    assert result["skipped_batches"] == 1
    assert result["epochs"][0]["skipped_batches"] == 1
    assert math.isfinite(result["epochs"][0]["train_ppl"]) and math.isfinite(result["epochs"][0]["valid_ppl"])
    model = load_lm(tmp_path / "exp" / "config.yaml")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_recipe_lm_config_builds(repo_root):
    from funasr_lite.utils.config import load_yaml

    config = load_yaml(os.path.join(repo_root, "egs", "aishell1", "conf", "lm.yaml"))
    model = build_lm({**config, "vocab_size": 4234})
    assert len(model.encoder.encoders) == 2 and model.decoder.in_features == 256
    assert model.encoder.encoders[0].self_attn.h == 4
    assert set(config["train_conf"]) <= set(train_lm_cli.DEFAULT_TRAIN_CONF)
