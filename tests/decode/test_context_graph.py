"""Hotword boosting in beam search (funasr_lite/decode/context_graph.py): the trie's bonus against a
direct count of complete hotwords, and the boosted beam search against exhaustive search."""

import itertools
import random

import pytest
import torch

from funasr_lite.decode.beam_search import beam_search
from funasr_lite.decode.context_graph import ROOT, ContextGraph, ContextGraphError

EOS = 2


def run(graph, tokens):
    """Total bonus of a token sequence (steps + finish), and the states on the way."""
    state, total, states = ROOT, 0.0, []
    for token in tokens:
        state, bonus = graph.step(state, token)
        total += bonus
        states.append(state)
    return total + graph.finish(state), states


def greedy_matches(words, tokens):
    """Reference: scan left to right; at each end position take the longest hotword ending there
    that starts after the previous match (what the trie does), and sum their lengths."""
    total, last_end = 0, 0
    for end in range(1, len(tokens) + 1):
        best = 0
        for word in words:
            start = end - len(word)
            if start >= last_end and tuple(tokens[start:end]) == tuple(word):
                best = max(best, len(word))
        if best:
            total += best
            last_end = end
    return total


def test_bonus_counts_complete_hotwords_only():
    graph = ContextGraph([[10, 11, 12], [11, 13], [14]], score=1.5)
    assert len(graph) == 3
    assert run(graph, [10, 11, 12])[0] == pytest.approx(4.5)
    assert run(graph, [10, 11, 13])[0] == pytest.approx(3.0)  # failure link: "11 13" inside "10 11 13"
    assert run(graph, [10, 11])[0] == 0.0  # an unfinished match is given back at the end
    assert run(graph, [10, 11, 99, 14])[0] == pytest.approx(1.5)  # a broken match earns nothing
    assert run(graph, [14, 14, 10, 11, 12])[0] == pytest.approx(7.5)
    # While searching, a partial match holds its bonus (so the beam keeps it alive).
    state, bonus = graph.step(ROOT, 10)
    assert state != ROOT and bonus == pytest.approx(1.5)
    assert graph.next_tokens(state) == {11, 10, 14}  # its child and the root's


def test_bonus_equals_a_direct_count_on_random_sequences():
    rng = random.Random(5)
    for trial in range(200):
        words = {tuple(rng.randint(3, 7) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 5))}
        graph = ContextGraph(sorted(words), score=1.0)
        tokens = [rng.randint(3, 7) for _ in range(rng.randint(0, 12))]
        assert run(graph, tokens)[0] == pytest.approx(greedy_matches(sorted(words), tokens)), (words, tokens)


def test_bad_hotword_lists_are_refused():
    with pytest.raises(ContextGraphError, match="score must be > 0"):
        ContextGraph([[3]], score=0.0)
    with pytest.raises(ContextGraphError, match="no hotword"):
        ContextGraph([[], []], score=1.0)
    assert len(ContextGraph([[3, 4], [3, 4]], score=1.0)) == 2  # duplicates: one path, counted as given


def exhaustive(am_logp, graph):
    """The best sequence by am + context over every token sequence (no <blank>/<s>; </s> last only)."""
    positions, vocab = am_logp.shape
    best, best_tokens = float("-inf"), None
    middle = [t for t in range(vocab) if t not in (0, 1, EOS)]
    for tokens in itertools.product(middle, repeat=positions - 1):
        for last in middle + [EOS]:
            sequence = list(tokens) + [last]
            am = sum(float(am_logp[i, t]) for i, t in enumerate(sequence))
            bonus = run(graph, [t for t in sequence if t != EOS])[0]
            if am + bonus > best:
                best, best_tokens = am + bonus, [t for t in sequence if t != EOS]
    return best, best_tokens


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_beam_with_hotwords_equals_exhaustive_search(seed):
    generator = torch.Generator().manual_seed(seed)
    am_logp = (2.0 * torch.randn(4, 7, generator=generator, dtype=torch.float64)).log_softmax(-1)
    graph = ContextGraph([[3, 4], [5, 6, 3]], score=2.0)
    hyp = beam_search(am_logp, beam_size=7 ** 4, context=graph, eos_id=EOS)[0]
    best, tokens = exhaustive(am_logp, graph)
    assert hyp.token_ids == tokens
    assert hyp.score == pytest.approx(best)
    assert hyp.scores["context"] == pytest.approx(run(graph, tokens)[0])
    plain = beam_search(am_logp, beam_size=7 ** 4, eos_id=EOS)[0]
    assert (hyp.token_ids != plain.token_ids) == (seed != 1)  # seeds 0 and 2: the bonus changes the best


def test_a_hotword_outside_the_acoustic_top_k_is_found():
    """Beam 1 (greedy) would take token 3 at both positions; the hotword 5 6 ranks last acoustically
    at position 0 yet wins with its bonus: the hotword's tokens are candidates whatever their rank."""
    am_logp = torch.full((2, 8), -9.0, dtype=torch.float64)
    am_logp[:, 3] = -0.1
    am_logp[0, 5] = -4.0
    am_logp[1, 6] = -3.0
    plain = beam_search(am_logp, beam_size=1, eos_id=None)[0]
    assert plain.token_ids == [3, 3]
    boosted = beam_search(am_logp, beam_size=1, eos_id=None, context=ContextGraph([[5, 6]], score=4.0))[0]
    assert boosted.token_ids == [5, 6] and boosted.scores["context"] == pytest.approx(8.0)
    weak = beam_search(am_logp, beam_size=1, eos_id=None, context=ContextGraph([[5, 6]], score=1.0))[0]
    assert weak.token_ids == [3, 3] and weak.scores["context"] == 0.0


def test_context_topk_searches_hotword_tokens_only_among_the_decoders_best():
    """The same case as above: hotword token 5 ranks last at position 0 (8 tokens, 3 of them special);
    with context_topk 2 it is not searched there, with context_topk 8 it is."""
    am_logp = torch.full((2, 8), -9.0, dtype=torch.float64)
    am_logp[:, 3] = -0.1
    am_logp[:, 4] = -1.0
    am_logp[0, 5] = -4.0
    am_logp[1, 6] = -3.0
    graph = ContextGraph([[5, 6]], score=4.0)
    pruned = beam_search(am_logp, beam_size=1, eos_id=None, context=graph, context_topk=2)[0]
    assert pruned.token_ids == [3, 3]
    wide = beam_search(am_logp, beam_size=1, eos_id=None, context=graph, context_topk=8)[0]
    assert wide.token_ids == [5, 6]


def test_cached_transitions_equal_steps():
    rng = random.Random(9)
    words = sorted({tuple(rng.randint(3, 9) for _ in range(rng.randint(1, 4))) for _ in range(12)})
    graph = ContextGraph(words, score=0.7)
    for state in range(len(graph.children)):
        table = graph.transitions(state)
        assert set(table) == graph.next_tokens(state)
        for token in range(3, 10):
            expected = graph.step(state, token)
            got = table.get(token, (ROOT, graph.finish(state)))
            assert got[0] == expected[0] and got[1] == pytest.approx(expected[1]), (state, token)
