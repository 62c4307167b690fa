"""CTC prefix scores against a brute-force sum over alignments (and FunASR's scorer);
Paraformer beam search against exhaustive search and greedy argmax."""

import itertools
import math

import numpy as np
import pytest
import torch

from funasr_lite.decode.beam_search import beam_search, beam_search_batch
from funasr_lite.decode.ctc_prefix_score import CTCPrefixScorer, score_sequence_prefixes
from funasr_lite.models.lm.transformer_lm import TransformerLM

BLANK, SOS, EOS = 0, 1, 2


@pytest.fixture(autouse=True)
def fixed_seed():  # one thread: tests/decode/conftest.py
    torch.manual_seed(0)


def random_log_probs(rows: int, vocab: int, generator_seed: int, sharpness: float = 2.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(generator_seed)
    return (sharpness * torch.randn(rows, vocab, generator=generator, dtype=torch.float64)).log_softmax(-1)


def collapse(alignment, blank=BLANK):
    """CTC collapse: merge repeats, then drop blanks."""
    out, previous = [], None
    for symbol in alignment:
        if symbol != blank and symbol != previous:
            out.append(symbol)
        previous = symbol
    return tuple(out)


def brute_force_ctc(ctc_logp: torch.Tensor):
    """Sum over every alignment: {y: P(output == y)} and {y: P(output starts with y)}."""
    num_frames, vocab = ctc_logp.shape
    logp = ctc_logp.numpy()
    exact, prefix = {}, {}
    for alignment in itertools.product(range(vocab), repeat=num_frames):
        probability = math.exp(sum(logp[t, s] for t, s in enumerate(alignment)))
        output = collapse(alignment)
        exact[output] = exact.get(output, 0.0) + probability
        for i in range(len(output) + 1):
            prefix[output[:i]] = prefix.get(output[:i], 0.0) + probability
    return exact, prefix


# ---------------------------------------------------------------- CTC prefix score


def test_ctc_prefix_score_equals_brute_force_over_alignments():
    ctc_logp = random_log_probs(4, 3, generator_seed=1, sharpness=1.0)  # T=4, V=3: blank + tokens 1, 2
    exact, prefix = brute_force_ctc(ctc_logp)
    scorer = CTCPrefixScorer(ctc_logp, blank_id=BLANK, eos_id=None)
    state, hyps = scorer.initial_state(), [()]
    torch.testing.assert_close(scorer.sequence_logp(state).exp(), torch.tensor([exact[()]], dtype=torch.float64))
    # Grow every hypothesis by both tokens at once, four times: all 2 + 4 + 8 + 16 prefixes.
    for _ in range(4):
        candidates = torch.tensor([[1, 2]] * len(hyps))
        scores = scorer.score_candidates(state, candidates)
        for h, hyp in enumerate(hyps):
            for k, token in enumerate((1, 2)):
                extended = hyp + (token,)
                assert scores.prefix_logp[h, k].exp().item() == pytest.approx(prefix.get(extended, 0.0), rel=1e-9, abs=1e-15)
                assert scores.sequence_logp[h, k].exp().item() == pytest.approx(exact.get(extended, 0.0), rel=1e-9, abs=1e-15)
        hyp_index = torch.arange(len(hyps)).repeat_interleave(2)
        candidate_index = torch.tensor([0, 1]).repeat(len(hyps))
        state = scorer.select(scores, hyp_index, candidate_index)
        hyps = [hyps[h] + ((1, 2)[k],) for h, k in zip(hyp_index.tolist(), candidate_index.tolist())]
    assert sum(exact.values()) == pytest.approx(1.0)


def test_ctc_eos_candidate_scores_the_hypothesis_as_complete():
    ctc_logp = random_log_probs(4, 4, generator_seed=2, sharpness=1.0)  # token 3 plays </s>
    exact, prefix = brute_force_ctc(ctc_logp)
    scorer = CTCPrefixScorer(ctc_logp, blank_id=BLANK, eos_id=3)
    state = scorer.select(scorer.score_candidates(scorer.initial_state(), torch.tensor([[2]])),
                          torch.tensor([0]), torch.tensor([0]))
    scores = scorer.score_candidates(state, torch.tensor([[1, 3]]))
    assert scores.prefix_logp[0, 0].exp().item() == pytest.approx(prefix[(2, 1)], rel=1e-9)
    assert scores.prefix_logp[0, 1].exp().item() == pytest.approx(exact[(2,)], rel=1e-9)
    assert scores.sequence_logp[0, 1].exp().item() == pytest.approx(exact[(2,)], rel=1e-9)


def test_ctc_prefix_score_matches_funasr_scorer_on_a_longer_input():
    from funasr.models.transformer.scorers.ctc_prefix_score import CTCPrefixScore

    ctc_logp = random_log_probs(30, 7, generator_seed=3).float()
    oracle = CTCPrefixScore(ctc_logp.numpy(), BLANK, EOS, np)
    oracle_state = oracle.initial_state()
    candidates = np.array([3, 4, 5, 6, EOS])
    sequence = [SOS]
    scorer = CTCPrefixScorer(ctc_logp, blank_id=BLANK, eos_id=EOS)
    state = scorer.initial_state()
    for token in (4, 4, 6, 3, 5):
        oracle_logp, oracle_states = oracle(np.array(sequence), candidates, oracle_state)
        scores = scorer.score_candidates(state, torch.from_numpy(candidates)[None])
        np.testing.assert_allclose(scores.prefix_logp[0].numpy(), oracle_logp, rtol=1e-4, atol=1e-3)
        chosen = int(np.where(candidates == token)[0][0])
        oracle_state = oracle_states[chosen]
        state = scorer.select(scores, torch.tensor([0]), torch.tensor([chosen]))
        sequence.append(token)


def test_score_sequence_prefixes_agrees_with_brute_force():
    ctc_logp = random_log_probs(5, 3, generator_seed=4, sharpness=1.0)
    exact, prefix = brute_force_ctc(ctc_logp)
    prefixes, full = score_sequence_prefixes(ctc_logp, [1, 1, 2])
    expected = [prefix[(1,)], prefix[(1, 1)], prefix[(1, 1, 2)]]
    np.testing.assert_allclose(prefixes.exp().numpy(), expected, rtol=1e-9)
    assert full.exp().item() == pytest.approx(exact[(1, 1, 2)], rel=1e-9)


# ---------------------------------------------------------------- beam search


class BigramLM:
    """A table LM with only the non-incremental ``score`` interface."""

    def __init__(self, vocab: int, seed: int):
        self.table = random_log_probs(vocab, vocab, generator_seed=seed, sharpness=1.5)  # row = previous token

    def score(self, prefixes, lengths):
        last = prefixes[torch.arange(prefixes.size(0)), lengths - 1]
        return self.table[last]

    def sentence_logp(self, tokens):
        history = [SOS] + list(tokens)
        return sum(self.table[a, b].item() for a, b in zip(history, list(tokens) + [EOS]))


def transformer_sentence_logp(lm: TransformerLM):
    def sentence_logp(tokens):
        ys = torch.tensor([list(tokens) or [0]])
        nll, _ = lm(ys, torch.tensor([len(tokens)]))
        return -nll.item()
    return sentence_logp


def exhaustive_search(am_logp, ctc_logp, sentence_logp, ctc_weight, lm_weight, length_bonus):
    """Score every allowed sequence the way beam_search documents it, best first.

    Allowed: positions hold real tokens (not blank/<s>/</s>); </s> may fill the last position.
    Exact CTC sequence probabilities come from the brute-force sum over alignments.
    """
    num_positions, vocab = am_logp.shape
    exact, _ = brute_force_ctc(ctc_logp) if ctc_logp is not None else ({}, {})
    real_tokens = [t for t in range(vocab) if t not in (BLANK, SOS, EOS)]
    scored = []
    for sequence in itertools.product(*([real_tokens] * (num_positions - 1) + [real_tokens + [EOS]])):
        tokens = tuple(t for t in sequence if t != EOS)
        am = sum(am_logp[i, t].item() for i, t in enumerate(sequence))
        ctc = math.log(exact.get(tokens, 0.0)) if ctc_logp is not None and exact.get(tokens, 0.0) > 0 else 0.0
        if ctc_logp is not None and exact.get(tokens, 0.0) == 0:
            ctc = -math.inf
        lm = sentence_logp(tokens) if sentence_logp is not None else 0.0
        total = am + ctc_weight * ctc + lm_weight * lm + length_bonus * len(tokens)
        scored.append((total, list(tokens), {"am": am, "ctc": ctc, "lm": lm}))
    return sorted(scored, key=lambda item: -item[0])


@pytest.mark.parametrize("lm_kind", ["bigram", "transformer"])
def test_full_beam_equals_exhaustive_search(lm_kind):
    num_positions, vocab, num_frames = 3, 6, 5
    am_logp = random_log_probs(num_positions, vocab, generator_seed=10)
    ctc_logp = random_log_probs(num_frames, vocab, generator_seed=11, sharpness=1.0)
    if lm_kind == "bigram":
        lm = BigramLM(vocab, seed=12)
        sentence_logp = lm.sentence_logp
    else:
        lm = TransformerLM(vocab, embed_unit=8, att_unit=16, head=2, unit=32, layer=2, dropout_rate=0.0,
                           pos_enc="sinusoidal").double().eval()
        sentence_logp = transformer_sentence_logp(lm)
    weights = dict(ctc_weight=0.6, lm_weight=0.8, length_bonus=0.4)
    expected = exhaustive_search(am_logp, ctc_logp, sentence_logp, **weights)
    hyps = beam_search(am_logp, ctc_logp, lm, beam_size=vocab**num_positions, nbest=10, **weights)
    assert len(hyps) == 10
    for hyp, (total, tokens, parts) in zip(hyps, expected[:10]):
        assert hyp.token_ids == tokens
        assert hyp.score == pytest.approx(total, rel=1e-7, abs=1e-7)
        for name in ("am", "ctc", "lm"):
            assert hyp.scores[name] == pytest.approx(parts[name], rel=1e-7, abs=1e-7)
        assert hyp.scores["length_bonus"] == len(tokens)
    assert any(len(tokens) < num_positions for _, tokens, _ in expected[:10])  # </s> endings were in play


def test_small_beam_finds_consistent_hypotheses_no_better_than_exhaustive():
    am_logp = random_log_probs(4, 6, generator_seed=20, sharpness=1.0)
    ctc_logp = random_log_probs(5, 6, generator_seed=21, sharpness=1.0)
    lm = BigramLM(6, seed=22)
    weights = dict(ctc_weight=0.5, lm_weight=0.5, length_bonus=0.0)
    best_total = exhaustive_search(am_logp, ctc_logp, lm.sentence_logp, **weights)[0][0]
    hyps = beam_search(am_logp, ctc_logp, lm, beam_size=2, nbest=2, **weights)
    assert len(hyps) == 2 and hyps[0].score >= hyps[1].score
    assert hyps[0].score <= best_total + 1e-9
    for hyp in hyps:
        recomputed = hyp.scores["am"] + 0.5 * hyp.scores["ctc"] + 0.5 * hyp.scores["lm"]
        assert hyp.score == pytest.approx(recomputed)
        assert hyp.scores["lm"] == pytest.approx(lm.sentence_logp(hyp.token_ids))


def test_beam_one_without_ctc_and_lm_is_greedy_argmax():
    am_logp = random_log_probs(9, 20, generator_seed=30)
    am_logp[:, [BLANK, SOS, EOS]] -= 50.0  # specials never win, as in a trained decoder
    hyp = beam_search(am_logp, beam_size=1)[0]
    greedy = am_logp.argmax(dim=-1)
    assert hyp.token_ids == greedy.tolist()
    assert hyp.score == pytest.approx(am_logp.max(dim=-1).values.sum().item())
    # With the last position preferring </s> (predictor_bias models), it is scored and stripped.
    am_logp[-1, EOS] = 0.0
    hyp = beam_search(am_logp, beam_size=1)[0]
    assert hyp.token_ids == greedy[:-1].tolist()
    assert hyp.scores["am"] == pytest.approx(am_logp[:-1].max(dim=-1).values.sum().item() + 0.0)
    assert hyp.scores["length_bonus"] == 8


def test_eos_is_not_allowed_before_the_last_position():
    am_logp = random_log_probs(3, 6, generator_seed=40)
    am_logp[:, EOS] = 0.0  # the decoder "prefers" </s> everywhere
    hyps = beam_search(am_logp, beam_size=5, nbest=5)
    assert all(len(h.token_ids) >= 2 for h in hyps)
    assert len(hyps[0].token_ids) == 2  # </s> taken at the last position only


def test_incremental_and_plain_lm_scoring_agree():
    vocab = 15
    lm = TransformerLM(vocab, embed_unit=8, att_unit=16, head=2, unit=32, layer=2, dropout_rate=0.0).eval()

    class PlainScoring:  # hides score_step, forcing full recomputation
        def score(self, prefixes, lengths):
            return lm.score(prefixes, lengths)

    am_logp = random_log_probs(6, vocab, generator_seed=50, sharpness=0.5).float()
    ctc_logp = random_log_probs(12, vocab, generator_seed=51).float()
    options = dict(beam_size=4, ctc_weight=0.3, lm_weight=0.7, length_bonus=0.2, nbest=4)
    incremental = beam_search(am_logp, ctc_logp, lm, **options)
    plain = beam_search(am_logp, ctc_logp, PlainScoring(), **options)
    assert [h.token_ids for h in incremental] == [h.token_ids for h in plain]
    for a, b in zip(incremental, plain):
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_batch_driver_matches_single_utterances():
    vocab = 10
    lm = BigramLM(vocab, seed=60)
    token_nums, frames = torch.tensor([4, 2, 3]), torch.tensor([9, 5, 7])
    am = torch.stack([random_log_probs(4, vocab, generator_seed=61 + b) for b in range(3)])
    ctc = torch.stack([random_log_probs(9, vocab, generator_seed=71 + b) for b in range(3)])
    options = dict(lm=lm, beam_size=3, ctc_weight=0.4, lm_weight=0.3, nbest=2)
    batched = beam_search_batch(am, token_nums, ctc, frames, **options)
    for b in range(3):
        alone = beam_search(am[b, : token_nums[b]], ctc[b, : frames[b]], **options)
        assert [h.token_ids for h in batched[b]] == [h.token_ids for h in alone]
        assert [h.score for h in batched[b]] == [h.score for h in alone]
