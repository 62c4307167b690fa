"""Hotword boosting in beam search for any model (context biasing by a token trie, as WeNet's and
icefall's ``ContextGraph``): no training, no bias branch; the hotwords' token sequences are a trie
with Aho-Corasick failure links, and a hypothesis earns ``score`` for each token that extends a
hotword match.

A hypothesis carries a trie state (a node). Taking token ``c`` from node ``n``:

- ``n`` has a child ``c``: move there, bonus ``+score``;
- otherwise follow failure links (the longest proper suffix of the match that is a trie prefix)
  until a node has a child ``c`` (move there) or the root is reached (stay there); the bonus is the
  new node's depth minus the old one's, times ``score``: a broken partial match gives back what it
  earned, beyond what its suffix keeps;
- reaching a word's last token (directly, or a shorter word ending at a suffix of the match) locks
  that word's bonus in (score × the word's length; the rest of a longer partial match is given
  back): the state goes back to the root, so later tokens cannot take it back.

At the end of the utterance :meth:`ContextGraph.finish` gives back the bonus of an unfinished
match. So a complete hotword in a hypothesis is worth ``score`` × its length, a partial one nothing.
Only tokens that can extend a match need to be searched beyond the acoustic top-k:
:meth:`ContextGraph.next_tokens`.
"""

from __future__ import annotations

from collections import deque
from typing import Dict, Iterable, List, Sequence, Set, Tuple

ROOT = 0


class ContextGraphError(ValueError):
    """Hotwords that cannot form a context graph (the message says why)."""


class ContextGraph:
    """The trie of hotword token sequences; states are node ids (ints, :data:`ROOT` = 0)."""

    def __init__(self, sequences: Iterable[Sequence[int]], score: float):
        if not score > 0:
            raise ContextGraphError(f"the hotword score must be > 0, got {score}")
        self.score = float(score)
        self.children: List[Dict[int, int]] = [{}]
        self.depth: List[int] = [0]
        self.is_end: List[bool] = [False]
        self.words = 0
        for sequence in sequences:
            tokens = [int(t) for t in sequence]
            if not tokens:
                continue
            node = ROOT
            for token in tokens:
                child = self.children[node].get(token)
                if child is None:
                    child = len(self.children)
                    self.children.append({})
                    self.depth.append(self.depth[node] + 1)
                    self.is_end.append(False)
                    self.children[node][token] = child
                node = child
            self.is_end[node] = True
            self.words += 1
        if not self.words:
            raise ContextGraphError("no hotword with a token in it")
        self.fail = [ROOT] * len(self.children)
        # end_depth: the length of the longest hotword ending at this node (its own, or one ending at a
        # suffix of it, reached through failure links); 0 where none ends.
        self.end_depth = [self.depth[n] if self.is_end[n] else 0 for n in range(len(self.children))]
        queue = deque(self.children[ROOT].values())
        while queue:  # breadth first: a node's failure link is known before its children's
            node = queue.popleft()
            if not self.is_end[node]:
                self.end_depth[node] = self.end_depth[self.fail[node]]
            for token, child in self.children[node].items():
                fail = self.fail[node]
                while fail != ROOT and token not in self.children[fail]:
                    fail = self.fail[fail]
                if node != ROOT:  # the root's children fail to the root
                    self.fail[child] = self.children[fail].get(token, ROOT)
                queue.append(child)
        self.first_tokens: Set[int] = set(self.children[ROOT])
        self._transitions: Dict[int, Dict[int, Tuple[int, float]]] = {}  # state -> its next_tokens' steps

    def __len__(self) -> int:
        """Number of hotwords (distinct token sequences)."""
        return self.words

    def step(self, state: int, token: int) -> Tuple[int, float]:
        """(next state, bonus) for taking ``token`` in ``state``."""
        node = state
        while node != ROOT and token not in self.children[node]:
            node = self.fail[node]
        node = self.children[node].get(token, ROOT)
        if self.end_depth[node]:  # a hotword is complete: its bonus is locked in, back to the root
            return ROOT, (self.end_depth[node] - self.depth[state]) * self.score
        return node, (self.depth[node] - self.depth[state]) * self.score

    def finish(self, state: int) -> float:
        """The bonus an unfinished match gives back at the end of the utterance (<= 0)."""
        return -self.depth[state] * self.score

    def transitions(self, state: int) -> Dict[int, Tuple[int, float]]:
        """{token: :meth:`step` (state, token)} for the tokens of :meth:`next_tokens` (cached); any
        other token goes to the root with :meth:`finish`'s bonus."""
        table = self._transitions.get(state)
        if table is None:
            table = self._transitions[state] = {token: self.step(state, token) for token in self.next_tokens(state)}
        return table

    def next_tokens(self, state: int) -> Set[int]:
        """Tokens that extend a match from ``state``: its children, its suffixes' and the root's."""
        tokens = set(self.first_tokens)
        node = state
        while node != ROOT:
            tokens.update(self.children[node])
            node = self.fail[node]
        return tokens


def graph_of_words(words: Sequence[str], tokenizer, score: float) -> Tuple[ContextGraph, int]:
    """(the graph of ``words`` tokenized as the model's transcripts are — characters, BPE pieces —,
    how many words were left out for a token outside the vocabulary)."""
    sequences = [[tokenizer.token2id.get(t) for t in tokenizer.text2tokens(word)] for word in words]
    usable = [sequence for sequence in sequences if sequence and None not in sequence]
    if not usable:
        raise ContextGraphError(f"none of the {len(sequences)} hotwords can be boosted: each holds a token "
                                "outside the vocabulary")
    return ContextGraph(usable, score), len(sequences) - len(usable)


__all__ = ["ContextGraph", "ContextGraphError", "ROOT", "graph_of_words"]
