"""A hotword test set for the synthetic corpus: sentences rich in names, said by the test voices.

The People's Daily text the corpus is made from is part-of-speech tagged: ``/nr`` person (a
family name and a given name are two ``/nr`` words, joined here), ``/ns`` place, ``/nt``
organisation. Entities of 2-10 characters that no train transcript contains are the hotwords;
sentences (the corpus's clauses, 6-25 characters) that hold one, that no utterance of the corpus
says, are drawn (seeded) until they hold ``num_hotwords`` distinct entities, then said by the
test split's voices with the corpus's own renderer (noise, reverberation, syllable-by-syllable
reading as in test). Lists: ``hotwords_<N>.txt`` for each N of ``list_sizes``: the set's entities
first, then distractors (entities of other sentences, also unseen in train), seeded.

Output: a Kaldi data dir (``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, ``char_timestamps``,
``utt2entities``: the entities each utterance says) plus the lists; the wavs under
``<corpus>/data_aishell/wav/test_hotword/``. Note: the corpus's ``lm_extra_text.txt`` holds every
sentence no utterance says, these included: score hotwords with greedy decoding (or an LM
without them), not with the recipe's LM.
"""

from __future__ import annotations

import json
import logging
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from funasr_lite.data.synthetic.corpus import (SIZES, CorpusError, CorpusSize, _render_all, utterance_id,
                                              write_rendered_data_dir)
from funasr_lite.data.synthetic.render import UtterancePlan
from funasr_lite.data.synthetic.text import MAX_CHARS, MIN_CHARS, sentence_pinyin, tagged_line_runs, utf8_lines
from funasr_lite.data.synthetic.voices import make_speakers
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

ENTITY_TAGS = ("nr", "ns", "nt")
MIN_ENTITY_CHARS, MAX_ENTITY_CHARS = 2, 10  # 10: funasr-onnx's hotword limit
SPLIT = "test_hotword"
FIRST_INDEX = 1001  # utterance numbers after the test split's own (BAC009<spk>W1001 ...)


def run_entities(words: Sequence[str], tags: Sequence[str]) -> List[str]:
    """The entities of one run: consecutive /nr words joined (江/nr 泽民/nr -> 江泽民), each /ns and
    /nt word; 2-10 characters."""
    entities, person = [], ""
    for word, tag in zip(list(words) + [""], list(tags) + [""]):
        if tag == "nr":
            person += word
            continue
        if person:
            entities.append(person)
            person = ""
        if tag in ("ns", "nt"):
            entities.append(word)
    return [e for e in entities if MIN_ENTITY_CHARS <= len(e) <= MAX_ENTITY_CHARS]


def candidate_sentences(text_path: str, said: set, train_blob: str) -> List[Tuple[Tuple[str, ...], List[str]]]:
    """(words, unseen entities) of each distinct clean sentence holding an entity no train text has."""
    seen, out = set(), []
    for line in utf8_lines(text_path):
        for words, tags, clean, _ in tagged_line_runs(line):
            chars = "".join(words)
            if not clean or not MIN_CHARS <= len(chars) <= MAX_CHARS or chars in said or chars in seen:
                continue
            seen.add(chars)
            entities = [e for e in run_entities(words, tags) if e not in train_blob]
            if entities:
                out.append((tuple(words), entities))
    return out


def build_hotword_set(corpus_dir: str, train_text: str, out_dir: str, text_path: str, size: str = "small",
                      seed: int = 1, nj: int = 2, num_hotwords: int = 200,
                      list_sizes: Sequence[int] = (200, 1000, 4000), corpus_size: Optional[CorpusSize] = None) -> dict:
    """Write the set (module docstring); returns its summary (also in ``<out_dir>/hotword_set.json``).
    ``corpus_size``: the corpus's layout when it was made with one (tests), else ``size``'s."""
    root = os.path.join(corpus_dir, "data_aishell")
    transcript = os.path.join(root, "transcript", "aishell_transcript_v0.8.txt")
    if not os.path.isfile(transcript):
        raise CorpusError(f"{transcript} not found: make the corpus first (stage -1)")
    with open(transcript, encoding="utf-8") as f:
        said = {"".join(line.split()[1:]) for line in f if line.strip()}
    with open(train_text, encoding="utf-8") as f:
        train_blob = "\n".join("".join(line.split()[1:]) for line in f)
    candidates = candidate_sentences(text_path, said, train_blob)
    order = np.random.default_rng([seed, 11]).permutation(len(candidates))
    chosen, hotwords = [], []
    for index in order:
        words, entities = candidates[int(index)]
        if len(hotwords) >= num_hotwords:
            break
        syllables = sentence_pinyin(words)
        if syllables is None:
            continue
        chosen.append((words, tuple(syllables), entities))
        hotwords += [e for e in entities if e not in hotwords]
    chosen_chars = {"".join(words) for words, _, _ in chosen}
    distractors = []
    for index in order:
        words, entities = candidates[int(index)]
        if "".join(words) not in chosen_chars:
            distractors += [e for e in entities if e not in hotwords and e not in distractors]
    if len(hotwords) + len(distractors) < max(list_sizes):
        raise CorpusError(f"only {len(hotwords) + len(distractors)} unseen entities for a {max(list_sizes)}-entry list")

    speakers = make_speakers((corpus_size or SIZES[size]).speakers, seed)
    voices = speakers["test"]
    plans = []
    for i, (words, syllables, _) in enumerate(chosen):
        voice = voices[i % len(voices)]
        number = FIRST_INDEX + i // len(voices)
        plans.append(UtterancePlan(utterance_id(voice.speaker_id, number), voice.speaker_id, SPLIT, number,
                                   words, syllables))
    results, dropped = _render_all(root, plans, speakers, seed, nj)
    entities_of = {plan.utt_id: entities for plan, (_, _, entities) in zip(plans, chosen)}
    plan_of = {plan.utt_id: plan for plan in plans}
    write_rendered_data_dir(out_dir, root, results, plan_of)
    results = sorted(results, key=lambda r: r.utt_id)
    with atomic_open(os.path.join(out_dir, "utt2entities")) as f:
        f.writelines(f"{r.utt_id} {' '.join(entities_of[r.utt_id])}\n" for r in results)
    pool = hotwords + distractors
    for count in list_sizes:
        with atomic_open(os.path.join(out_dir, f"hotwords_{count}.txt")) as f:
            f.writelines(word + "\n" for word in pool[: max(count, len(hotwords))])
    summary = {"utterances": len(results), "dropped": len(dropped), "hotwords": len(hotwords),
               "entity_occurrences": sum(len(e) for e in entities_of.values()), "list_sizes": list(list_sizes),
               "candidate_sentences": len(candidates), "seed": seed}
    with atomic_open(os.path.join(out_dir, "hotword_set.json")) as f:
        json.dump(summary, f, ensure_ascii=False, indent=1)
    logger.info("hotword set %s: %d utterances, %d hotwords, lists %s", out_dir, len(results), len(hotwords),
                ", ".join(map(str, list_sizes)))
    return summary


__all__ = ["build_hotword_set", "candidate_sentences", "run_entities"]
