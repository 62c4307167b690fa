"""SCAMA chunking (models/modules/scama.py) against funasr's overlap_chunk and
build_scama_mask_for_cross_attention_decoder: the same matrices for the same lengths."""

import numpy as np
import pytest
import torch

from funasr.models.paraformer.cif_predictor import CifPredictorV2 as FunasrCifPredictorV2
from funasr.models.scama.chunk_utilis import build_scama_mask_for_cross_attention_decoder, overlap_chunk

from funasr_lite.models.modules.scama import (
    ChunkConfig, chunk_plan, cross_attention_mask, frame_alignments, remove_chunk, split_chunk,
)

CONFIGS = [  # (chunk_size, stride, pad_left, encoder look-back, decoder look-back, shift_fsmn)
    (15, 10, 0, 4, 1, 5),  # the released model's 600 ms configuration
    (12, 8, 0, 4, 1, 5),  # its 480 ms one
    (16, 10, 2, 1, 2, 3),
    (5, 5, 0, 0, 0, 2),
]
LENGTHS = [[37, 20, 9], [10], [60, 61, 1]]


def funasr_chunker(config):
    size, stride, pad_left, enc, dec, shift = config
    chunker = overlap_chunk(chunk_size=(size,), stride=(stride,), pad_left=(pad_left,),
                            encoder_att_look_back_factor=(enc,), shfit_fsmn=shift,
                            decoder_att_look_back_factor=(dec,))
    return chunker


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("lengths", LENGTHS)
def test_chunk_plan_equals_funasrs_matrices(config, lengths):
    chunker = funasr_chunker(config)
    theirs = chunker.gen_chunk_mask(torch.tensor(lengths), 0)
    plan = chunk_plan(torch.tensor(lengths), ChunkConfig(*config))
    ours = (plan.x_add, plan.x_len_chunk, plan.x_rm, plan.x_len, plan.mask_shift, plan.mask_predictor,
            plan.mask_att_encoder, plan.mask_shift_att_decoder)
    for name, a, b in zip(("x_add", "x_len_chunk", "x_rm", "x_len", "mask_shift", "mask_predictor",
                           "mask_att_encoder", "mask_shift_att_decoder"), ours, theirs):
        assert a.shape == b.shape, name
        np.testing.assert_array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), err_msg=name)

    x = torch.randn(len(lengths), max(lengths), 6, generator=torch.Generator().manual_seed(0))
    lens = torch.tensor(lengths)
    chunked, chunk_lens = split_chunk(x, lens, plan)
    expected, expected_lens = chunker.split_chunk(x.clone(), lens, chunk_outs=theirs)
    torch.testing.assert_close(chunked, expected)
    assert chunk_lens.tolist() == expected_lens.tolist()
    back, back_lens = remove_chunk(chunked, chunk_lens, plan)
    valid = torch.arange(max(lengths))[None, :] < lens[:, None]
    torch.testing.assert_close(back * valid[..., None], x * valid[..., None])  # a round trip
    assert back_lens.tolist() == lengths


@pytest.mark.parametrize("config", CONFIGS[:3])
@pytest.mark.parametrize("training", [True, False])
def test_frame_alignments_and_cross_attention_mask_equal_funasrs(config, training):
    lengths = torch.tensor([37, 20, 9])
    chunker = funasr_chunker(config)
    chunker.gen_chunk_mask(lengths, 0)
    chunker.get_chunk_size(0)
    plan = chunk_plan(lengths, ChunkConfig(*config))
    chunk_lens = torch.from_numpy(plan.x_len_chunk)
    generator = torch.Generator().manual_seed(3)
    alphas = torch.rand(3, int(chunk_lens.max()), generator=generator) * 0.6
    alphas = alphas * (torch.arange(alphas.size(1))[None, :] < chunk_lens[:, None])
    alphas = alphas * torch.from_numpy(plan.mask_predictor[:, 0]).float()[None, :]
    targets = torch.round(alphas.sum(1)).long().clamp(min=1)

    predictor = FunasrCifPredictorV2(idim=4, l_order=1, r_order=1).train(training)
    theirs_align, _ = predictor.gen_frame_alignments(alphas, chunk_lens)
    ours_align = frame_alignments(alphas, chunk_lens, training)
    assert torch.equal(ours_align, theirs_align)

    mask_predictor = chunker.get_mask_chunk_predictor(None, batch_size=3)
    mask_decoder = chunker.get_mask_shift_att_chunk_decoder(None, batch_size=3)
    theirs = build_scama_mask_for_cross_attention_decoder(
        predictor_alignments=theirs_align, encoder_sequence_length=chunk_lens, chunk_size=1,
        encoder_chunk_size=chunker.chunk_size_pad_shift_cur, attention_chunk_center_bias=0,
        attention_chunk_size=chunker.chunk_size_pad_shift_cur, attention_chunk_type="chunk",
        predictor_mask_chunk_hopping=mask_predictor,
        decoder_att_look_back_factor=chunker.decoder_att_look_back_factor_cur,
        mask_shift_att_chunk_decoder=mask_decoder, target_length=targets, is_training=training)
    ours = cross_attention_mask(ours_align, chunk_lens, plan, targets, training)
    assert ours.shape == theirs.shape
    assert torch.equal(ours, theirs)
    assert ours.sum() > 0
