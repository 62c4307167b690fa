"""An embedded synthetic Mandarin corpus laid out exactly like AISHELL-1.

Text: sentences of the People's Daily January 1998 corpus, numbers spelt out (:mod:`.text`).
Speech: espeak-ng's ``cmn-latn-pinyin`` voice says each whole sentence, with per-speaker and
per-utterance prosody (:mod:`.voices`); per-character times come from espeak-ng's own phoneme
events (:mod:`.espeak`). Room reverberation on a share of utterances and additive noise at
15-35 dB SNR (:mod:`.acoustics`, :mod:`.render`). Planning, parallel jobs, resume and the output
layout: :mod:`.corpus`. Details: docs/synthetic_corpus.md.
"""

from funasr_lite.data.synthetic.corpus import (LM_TEXT_NAME, SIZES, TIMESTAMPS_NAME, TRANSCRIPT_NAME, CorpusError,
                                               CorpusSize, generate_corpus)
from funasr_lite.data.synthetic.text import default_text_path

__all__ = ["CorpusError", "CorpusSize", "LM_TEXT_NAME", "SIZES", "TIMESTAMPS_NAME", "TRANSCRIPT_NAME",
           "default_text_path", "generate_corpus"]
