"""FunASR issue #3723 (fixed upstream by PR #3716, not in funasr 1.4.16): plain Paraformer's
inference passes (peaks, alphas) to ts_prediction_lfr6_standard, which expects (alphas, peaks).
Ours pass them in the right order: on funasr's own weights our timestamps equal FunASR's function
called in the right order, and differ from what AutoModel 1.4.16 returns (the swapped order)."""

import copy

import torch

from funasr.utils.timestamp_tools import ts_prediction_lfr6_standard

from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.speech2text import Speech2Text, items_from_wav_files
from test_funasr_model_dir import corpus, funasr_automodel, funasr_dir, wav_paths  # noqa: F401 (fixtures)


def funasr_signals(funasr_model, feats):
    """FunASR's CIF alphas and peaks for one utterance, cut as its inference cuts them."""
    with torch.no_grad():
        encoder_out, encoder_lengths = funasr_model.encode(feats, torch.tensor([feats.shape[1]]))
        _, _, alphas, peaks = funasr_model.calc_predictor(encoder_out, encoder_lengths)
    length = int(encoder_lengths[0]) + 1  # the tail frame
    return alphas[0, :length], peaks[0, :length]


def test_ours_are_funasrs_rule_in_the_right_order_and_automodel_1_4_16_swaps(funasr_dir, wav_paths):
    model_dir, funasr_model = funasr_dir
    speech2text = Speech2Text(load_model_dir(model_dir))
    automodel = funasr_automodel(model_dir)
    swapped_differs = 0
    for index, path in enumerate(wav_paths):
        ours = speech2text.decode(items_from_wav_files([path]))[0]
        prepared = speech2text.prepare(index, items_from_wav_files([path])[0])
        alphas, peaks = funasr_signals(funasr_model, prepared.model_input[None])
        tokens = ours["token"]
        _, right = ts_prediction_lfr6_standard(alphas.clone(), peaks.clone(), copy.copy(tokens), upsample_rate=1)
        _, swapped = ts_prediction_lfr6_standard(peaks.clone(), alphas.clone(), copy.copy(tokens), upsample_rate=1)
        assert ours["timestamp"] == right
        released = automodel.generate(input=path, pred_timestamp=True)[0]["timestamp"]
        # what funasr 1.4.16 returns: the swapped order (cut to the words left after dropping <unk>,
        # see tests/inference/test_bicif_model_dir.py)
        assert released == swapped[: len([t for t in tokens if t != "<unk>"])]
        swapped_differs += right != swapped
    assert swapped_differs >= 1
