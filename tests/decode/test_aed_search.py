"""Decoding the Conformer AED (decode/aed_search.py, decode/ctc_align.py) on tiny random models:
searches agree with each other and with scores recomputed from scratch; a FunASR-layout
Conformer model dir decodes through the same API and files as a Paraformer."""

import copy
import itertools
import json
import math
import os

import numpy as np
import pytest
import torch
import yaml

from funasr_lite.decode.aed_search import BatchCTCPrefixScorer, aed_beam_search, ctc_greedy, search_batch
from funasr_lite.decode.ctc_align import ctc_forced_align, ctc_token_timestamps
from funasr_lite.decode.ctc_prefix_score import CTCPrefixScorer, score_sequence_prefixes
from funasr_lite.models import build_model
from funasr_lite.models.lm import build_lm
from test_infer import TOKENS, write_cmvn_from_waves, write_corpus
from funasr_configs import funasr_common_sections  # tests/funasr_configs.py

VOCAB = 13
CONFIG = {
    "model": "Conformer",
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
    "encoder": "ConformerEncoder",
    "encoder_conf": {"output_size": 32, "attention_heads": 4, "linear_units": 48, "num_blocks": 2,
                     "input_layer": "conv2d", "pos_enc_layer_type": "rel_pos",
                     "selfattention_layer_type": "rel_selfattn", "macaron_style": True,
                     "use_cnn_module": True, "cnn_module_kernel": 5},
    "decoder": "TransformerDecoder",
    "decoder_conf": {"attention_heads": 4, "linear_units": 48, "num_blocks": 2},
    "input_size": 20,
    "vocab_size": VOCAB,
}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(copy.deepcopy(CONFIG)).eval()


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(1)
    return build_lm({"lm": "transformer", "vocab_size": VOCAB,
                     "lm_conf": {"embed_unit": 16, "att_unit": 16, "head": 2, "unit": 32, "layer": 1}}).eval()


@pytest.fixture(scope="module")
def encoded(model):
    generator = torch.Generator().manual_seed(2)
    lengths = torch.tensor([61, 45, 30])
    feats = torch.randn(3, 61, 20, generator=generator)
    with torch.no_grad():
        encoder_out, encoder_lens = model.encode(feats, lengths)
    return feats, lengths, encoder_out, encoder_lens


def recomputed_score(model, lm, encoder_out, token_ids, ctc_weight, lm_weight, length_bonus):
    """The total score of one hypothesis, from a teacher-forced decoder pass, the CTC forward
    algorithm and the LM's sentence log-prob (independent of the search's incremental state)."""
    sos, eos = model.sos, model.eos
    ys_in = torch.tensor([[sos, *token_ids]])
    with torch.no_grad():
        logits, _ = model.decoder(encoder_out, torch.tensor([encoder_out.size(1)]), ys_in, torch.tensor([ys_in.size(1)]))
        decoder_logp = torch.log_softmax(logits, -1)[0].gather(1, torch.tensor([*token_ids, eos])[:, None]).sum()
        ctc_logp = model.ctc.log_softmax(encoder_out)[0]
        _, ctc_sequence = score_sequence_prefixes(ctc_logp, token_ids)
        lm_part = 0.0
        if lm is not None:
            lm_logp = lm.log_probs(ys_in)[0]  # (U, V): next-token log-probs after each prefix
            lm_part = float(lm_logp.gather(1, torch.tensor([*token_ids, eos])[:, None]).sum())
    return ((1 - ctc_weight) * float(decoder_logp) + ctc_weight * float(ctc_sequence)
            + lm_weight * lm_part + length_bonus * len(token_ids))


def test_beam_one_without_ctc_or_lm_is_attention_greedy(model, encoded):
    _, _, encoder_out, encoder_lens = encoded
    greedy = model.attention_greedy(encoder_out, encoder_lens)
    beam = aed_beam_search(model, encoder_out, encoder_lens, beam_size=1)
    assert any(len(g["token_ids"]) > 2 for g in greedy)  # the random model says something
    for g, hyps in zip(greedy, beam):
        assert hyps[0].token_ids == g["token_ids"]
        assert hyps[0].score == pytest.approx(g["score"], abs=1e-4)
    # a hypothesis holds at most T' - 1 tokens (then </s> is forced)
    for g, length in zip(greedy, encoder_lens.tolist()):
        assert len(g["token_ids"]) <= length - 1


@pytest.mark.parametrize("ctc_weight,lm_weight,length_bonus", [(0.3, 0.5, 0.2), (0.5, 0.0, 0.0), (0.0, 0.3, -0.1)])
def test_best_hypothesis_score_equals_a_recomputed_score(model, lm, encoded, ctc_weight, lm_weight, length_bonus):
    _, _, encoder_out, encoder_lens = encoded
    results = aed_beam_search(model, encoder_out, encoder_lens, lm=lm, beam_size=4, ctc_weight=ctc_weight,
                              lm_weight=lm_weight, length_bonus=length_bonus, nbest=3)
    for b, hyps in enumerate(results):
        assert len(hyps) == 3 and hyps[0].score >= hyps[1].score >= hyps[2].score
        length = int(encoder_lens[b])
        for hyp in hyps:
            expected = recomputed_score(model, lm if lm_weight else None, encoder_out[b:b + 1, :length],
                                        hyp.token_ids, ctc_weight, lm_weight, length_bonus)
            assert hyp.score == pytest.approx(expected, abs=2e-3), (b, hyp.token_ids)
            assert hyp.scores["length_bonus"] == len(hyp.token_ids)
            assert all(t not in (model.blank_id, model.sos, model.eos) for t in hyp.token_ids)


def test_an_utterance_decodes_the_same_alone_and_in_a_padded_batch(model, lm, encoded):
    _, _, encoder_out, encoder_lens = encoded
    options = dict(lm=lm, beam_size=3, ctc_weight=0.3, lm_weight=0.4)
    batch = aed_beam_search(model, encoder_out, encoder_lens, **options)
    for b in range(3):
        length = int(encoder_lens[b])
        alone = aed_beam_search(model, encoder_out[b:b + 1, :length], encoder_lens[b:b + 1], **options)
        assert alone[0][0].token_ids == batch[b][0].token_ids
        assert alone[0][0].score == pytest.approx(batch[b][0].score, abs=1e-3)


def test_batched_ctc_prefix_scores_equal_the_single_utterance_scorer():
    generator = torch.Generator().manual_seed(5)
    lengths = torch.tensor([7, 4])
    ctc_logp = torch.log_softmax(torch.randn(2, 7, 6, generator=generator), -1)
    width = 2
    batched = BatchCTCPrefixScorer(ctc_logp, lengths, width, blank_id=0, eos_id=2)
    candidates = torch.tensor([[3, 4], [5, 2], [3, 3], [4, 2]])  # rows 0-1: utterance 0, rows 2-3: utterance 1
    state = batched.initial_state()
    scores = batched.score_candidates(state, candidates)
    second = batched.score_candidates(batched.select(scores, torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 0])),
                                      candidates)
    for row in range(4):
        utt = row // width
        single = CTCPrefixScorer(ctc_logp[utt, : int(lengths[utt])], blank_id=0, eos_id=2)
        s1 = single.score_candidates(single.initial_state(), candidates[row:row + 1])
        torch.testing.assert_close(scores.prefix_logp[row], s1.prefix_logp[0])
        torch.testing.assert_close(scores.sequence_logp[row], s1.sequence_logp[0])
        first = [0, 0, 1, 0][row]
        s2 = single.score_candidates(single.select(s1, torch.tensor([0]), torch.tensor([first])), candidates[row:row + 1])
        torch.testing.assert_close(second.prefix_logp[row], s2.prefix_logp[0])
        torch.testing.assert_close(second.sequence_logp[row], s2.sequence_logp[0])


def brute_force_alignment(logp, tokens, blank=0):
    """The best frame labelling that collapses to `tokens`, by enumerating every labelling."""
    frames, vocab = logp.shape
    best, best_path = -math.inf, None
    for path in itertools.product(range(vocab), repeat=frames):
        collapsed = [k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k)]
        if collapsed == list(tokens):
            score = sum(float(logp[t, k]) for t, k in enumerate(path))
            if score > best:
                best, best_path = score, path
    return best_path


@pytest.mark.parametrize("tokens", [[1], [1, 2], [2, 2], [1, 2, 1], [3, 3, 3]])
def test_forced_alignment_is_the_best_path(tokens):
    generator = torch.Generator().manual_seed(len(tokens) * 7 + tokens[0])
    logp = torch.log_softmax(torch.randn(6, 4, generator=generator) * 2, -1)
    path = brute_force_alignment(logp, tokens)
    spans = ctc_forced_align(logp, tokens)
    # token i occupies the i-th run of non-blank frames on the best path
    runs, previous = [], None
    for t, k in enumerate(path):
        if k != 0 and (k != previous):
            runs.append([t, t])
        elif k != 0:
            runs[-1][1] = t
        previous = k
    assert spans == [tuple(r) for r in runs]
    assert ctc_token_timestamps(logp, tokens, frame_ms=40) == [[a * 40, (b + 1) * 40] for a, b in runs]


def test_forced_alignment_of_an_impossible_hypothesis_is_none():
    logp = torch.log_softmax(torch.randn(3, 4), -1)
    assert ctc_forced_align(logp, [1, 1, 1]) is None  # needs 5 frames (blanks between repeats)
    assert ctc_forced_align(logp, []) == []
    # relaxed: one frame per token, no blank needed between the repeats
    assert ctc_forced_align(logp, [1, 1, 1], strict=False) == [(0, 0), (1, 1), (2, 2)]
    assert ctc_token_timestamps(logp, [1, 1, 1], frame_ms=40) == [[0, 40], [40, 80], [80, 120]]
    assert ctc_token_timestamps(logp, [1, 2, 1, 2], frame_ms=40) is None  # more tokens than frames


def test_ctc_greedy_merges_repeats_and_drops_blanks():
    path = [0, 3, 3, 0, 3, 1, 1, 0]
    logp = torch.full((1, len(path), 4), -5.0)
    for t, k in enumerate(path):
        logp[0, t, k] = -0.1
    out = ctc_greedy(logp, torch.tensor([6]))  # the last two frames are padding
    assert out[0]["token_ids"] == [3, 3, 1]
    assert out[0]["score"] == pytest.approx(-0.6)


def test_search_batch_gives_ctc_timestamps_for_every_mode(model, encoded):
    feats, lengths, _, _ = encoded
    for mode in ("greedy", "beam", "ctc_greedy"):
        outputs = search_batch(model, feats, lengths, mode, beam_size=3, ctc_weight=0.3 if mode == "beam" else 0.0,
                               frame_ms=40.0)
        for output in outputs:
            stamps = output["timestamp"]
            assert len(stamps) == len(output["token_ids"])  # at most T' - 1 tokens: always alignable
            assert all(0 <= a < b for a, b in stamps)
            assert [a for a, _ in stamps] == sorted(a for a, _ in stamps)


# ---------------------------------------------------------------- a model dir, through the API


FUNASR_CONFORMER_CONFIG = {
    # the sections of FunASR's conformer_12e_6d_2048_256.yaml config.yaml, small sizes
    "encoder": "ConformerEncoder",
    "encoder_conf": dict(CONFIG["encoder_conf"], dropout_rate=0.1, positional_dropout_rate=0.1,
                         attention_dropout_rate=0.0, normalize_before=True, activation_type="swish"),
    "decoder": "TransformerDecoder",
    "decoder_conf": dict(CONFIG["decoder_conf"], dropout_rate=0.1, positional_dropout_rate=0.1,
                         self_attention_dropout_rate=0.0, src_attention_dropout_rate=0.0),
    "model": "Conformer",
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
    "specaug": "SpecAug",
    "specaug_conf": {"apply_time_warp": True, "time_warp_window": 5, "time_warp_mode": "bicubic",
                     "apply_freq_mask": True, "freq_mask_width_range": [0, 30], "num_freq_mask": 2,
                     "apply_time_mask": True, "time_mask_width_range": [0, 40], "num_time_mask": 2},
    **funasr_common_sections(lfr_m=1, lfr_n=1, lr=0.002),
}


@pytest.fixture(scope="module")
def conformer_dir(tmp_path_factory):
    """A FunASR-layout Conformer dir whose weights come from funasr's own Conformer class."""
    import funasr.models.conformer.encoder  # noqa: F401
    import funasr.models.transformer.decoder  # noqa: F401
    from funasr.models.conformer.model import Conformer as FunasrConformer

    root = tmp_path_factory.mktemp("conformer")
    data_dir, waves = write_corpus(str(root / "corpus"), {"utt_a": 1.6, "utt_b": 0.8}, with_feats=False)
    path = str(root / "model")
    os.makedirs(path)
    config = copy.deepcopy(FUNASR_CONFORMER_CONFIG)
    kwargs = {k: copy.deepcopy(config[k]) for k in ("encoder", "encoder_conf", "decoder", "decoder_conf",
                                                     "ctc_conf")}
    torch.manual_seed(3)
    reference = FunasrConformer(**kwargs, **config["model_conf"], input_size=80, vocab_size=len(TOKENS))
    torch.save(reference.state_dict(), os.path.join(path, "model.pt"))
    with open(os.path.join(path, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    with open(os.path.join(path, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(TOKENS, f, ensure_ascii=False)
    write_cmvn_from_waves(os.path.join(path, "am.mvn"), waves.values(), lfr_m=1, lfr_n=1)
    return path, data_dir


def test_conformer_model_dir_decodes_through_the_paraformer_api(conformer_dir, tmp_path):
    from funasr_lite.api import SpeechRecognizer
    from funasr_lite.inference.writers import read_1best_recog

    path, data_dir = conformer_dir
    for mode, options in (("greedy", {}), ("beam", {"beam_size": 3, "ctc_weight": 0.3}), ("ctc_greedy", {})):
        asr = SpeechRecognizer.from_model_dir(path, decode_mode=mode, **options)
        assert type(asr.loaded.model).__name__ == "Conformer"
        out = tmp_path / mode
        results = asr(os.path.join(data_dir, "wav.scp"), output_dir=str(out))
        assert [r["key"] for r in results] == ["utt_a", "utt_b"]
        for r in results:
            assert isinstance(r["text"], str) and math.isfinite(r["score"])
            assert len(r["timestamp"]) == len(r["token"])
        recog = read_1best_recog(str(out / "1best_recog"))
        assert [(r["key"], r["text"], r["token"]) for r in recog] == [(r["key"], r["text"], r["token"]) for r in results]
        assert [r["timestamp"] for r in recog] == [r["timestamp"] for r in results]
    # empty audio -> empty text; silence-length input shorter than the subsampling -> empty too
    asr = SpeechRecognizer.from_model_dir(path, decode_mode="beam", beam_size=3, ctc_weight=0.3)
    empty, short = asr([np.zeros(0, dtype=np.float32), np.zeros(900, dtype=np.float32)])
    assert empty["text"] == "" and empty["token"] == [] and empty["timestamp"] == []
    assert short["text"] == ""


def test_conformer_over_long_input_is_refused_with_its_length(conformer_dir):
    from funasr_lite.api import SpeechRecognizer
    from funasr_lite.inference.speech2text import DecodeError

    path, _ = conformer_dir
    asr = SpeechRecognizer.from_model_dir(path, decode_mode="greedy", max_frames=50)
    with pytest.raises(DecodeError, match=r"utt1 is too long: 98 frames"):
        asr(np.zeros(16000, dtype=np.float32))


def test_unknown_model_name_in_config_is_refused_naming_the_key(conformer_dir, tmp_path):
    from funasr_lite.inference.model_dir import ModelDirError, load_model_dir
    import shutil

    path, _ = conformer_dir
    bad = str(tmp_path / "bad")
    shutil.copytree(path, bad)
    with open(os.path.join(bad, "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config["model"] = "RNNT"
    with open(os.path.join(bad, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)
    with pytest.raises(ModelDirError, match=r"config.yaml: cannot build the model: unknown model 'RNNT'"):
        load_model_dir(bad)


def test_max_lengths_caps_the_hypotheses(model, encoded):
    _, _, encoder_out, encoder_lens = encoded
    caps = torch.tensor([2, 0, 3])
    beam = aed_beam_search(model, encoder_out, encoder_lens, beam_size=3, ctc_weight=0.3, max_lengths=caps)
    greedy = model.attention_greedy(encoder_out, encoder_lens, caps)
    for cap, hyps, g in zip(caps.tolist(), beam, greedy):
        assert len(hyps[0].token_ids) <= cap and len(g["token_ids"]) <= cap
    assert beam[1][0].token_ids == [] and greedy[1]["token_ids"] == []


def test_aed_dir_without_ctc_head_decodes_without_timestamps(conformer_dir, tmp_path):
    import funasr.models.conformer.encoder  # noqa: F401
    import funasr.models.transformer.decoder  # noqa: F401
    import shutil

    from funasr.models.conformer.model import Conformer as FunasrConformer

    from funasr_lite.api import SpeechRecognizer

    path, data_dir = conformer_dir
    no_ctc = str(tmp_path / "no_ctc")
    shutil.copytree(path, no_ctc)
    with open(os.path.join(no_ctc, "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config["model_conf"]["ctc_weight"] = 0.0
    with open(os.path.join(no_ctc, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)
    kwargs = {k: copy.deepcopy(config[k]) for k in ("encoder", "encoder_conf", "decoder", "decoder_conf", "ctc_conf")}
    reference = FunasrConformer(**kwargs, **config["model_conf"], input_size=80, vocab_size=len(TOKENS))
    assert reference.ctc is None
    torch.save(reference.state_dict(), os.path.join(no_ctc, "model.pt"))
    asr = SpeechRecognizer.from_model_dir(no_ctc, decode_mode="beam", beam_size=2)
    results = asr(os.path.join(data_dir, "wav.scp"), output_dir=str(tmp_path / "out"))
    assert len(results) == 2 and all("timestamp" not in r for r in results)
    assert not os.path.exists(tmp_path / "out" / "1best_recog" / "time_stamp")
    assert os.path.exists(tmp_path / "out" / "1best_recog" / "text")


def test_funasr_automodel_ctc_greedy_gives_our_text_from_the_same_wavs(conformer_dir):
    """funasr's whole pipeline on the Conformer dir (its batched inference is CTC greedy) vs ours."""
    from funasr import AutoModel

    from funasr_lite.api import SpeechRecognizer

    path, data_dir = conformer_dir
    wavs = [os.path.join(os.path.dirname(data_dir), "wav", f"{key}.wav") for key in ("utt_a", "utt_b")]
    automodel = AutoModel(model=path, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    theirs = automodel.generate(input=wavs, batch_size=2)
    ours = SpeechRecognizer.from_model_dir(path, decode_mode="ctc_greedy")(wavs)
    assert [r["key"] for r in ours] == [r["key"] for r in theirs]
    assert [r["text"] for r in ours] == [r["text"] for r in theirs]
    assert all(len(r["text"]) > 3 for r in ours)  # the random model says something
