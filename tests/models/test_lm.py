"""TransformerLM: causality, FunASR checkpoint parity, scoring paths, the recipe config.

Training and resuming: tests/train/test_lm_trainer.py (the LM task of the engine)."""

import os

import pytest
import torch

from funasr_lite.models.lm import build_lm
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


def test_recipe_lm_config_builds(repo_root):
    from funasr_lite.train.tasks.lm import LM_TRAIN_CONF_KEYS
    from funasr_lite.utils.config import load_yaml

    config = load_yaml(os.path.join(repo_root, "egs", "aishell1", "conf", "lm.yaml"))
    model = build_lm({**config, "vocab_size": 4234})
    assert len(model.encoder.encoders) == 2 and model.decoder.in_features == 256
    assert model.encoder.encoders[0].self_attn.h == 4
    assert set(config["train_conf"]) <= set(LM_TRAIN_CONF_KEYS)
