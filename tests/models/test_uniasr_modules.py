"""UniASR's new modules against funasr's on the same weights: the SCAMA decoder
(FsmnDecoderSCAMAOpt) teacher-forced and step by step (FunASR's score), and the stride conv
(Conv1dSubsampling)."""

import pytest
import torch

from funasr.models.scama.decoder import FsmnDecoderSCAMAOpt as FunasrDecoder
from funasr.models.transformer.utils.subsampling import Conv1dSubsampling as FunasrConv1dSubsampling

from funasr_lite.models.modules.subsampling import Conv1dSubsampling
from funasr_lite.models.uniasr.decoder import FsmnDecoderSCAMAOpt

VOCAB, ENC = 12, 16


def decoder_pair(**conf):
    conf = dict(dict(attention_heads=2, linear_units=32, num_blocks=3, att_layer_num=2, dropout_rate=0.0,
                     positional_dropout_rate=0.0, self_attention_dropout_rate=0.0, src_attention_dropout_rate=0.0,
                     kernel_size=5, concat_embeds=True), **conf)
    torch.manual_seed(0)
    theirs = FunasrDecoder(vocab_size=VOCAB, encoder_output_size=ENC, **conf).eval()
    ours = FsmnDecoderSCAMAOpt(vocab_size=VOCAB, encoder_output_size=ENC, **conf).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


CONFS = [{}, {"attention_dim": 12}, {"sanm_shfit": 0}, {"num_blocks": 2, "att_layer_num": 2},
         {"concat_embeds": False}]


@pytest.mark.parametrize("conf", CONFS, ids=["default", "attention_dim", "shift0", "no_decoders2", "no_concat"])
def test_teacher_forced_forward_equals_funasrs(conf):
    ours, theirs = decoder_pair(**conf)
    generator = torch.Generator().manual_seed(1)
    memory, memory_lens = torch.randn(2, 20, ENC, generator=generator), torch.tensor([20, 14])
    tokens, token_lens = torch.randint(0, VOCAB, (2, 5), generator=generator), torch.tensor([5, 3])
    embeds = torch.randn(2, 5, ENC, generator=generator)
    chunk_mask = (torch.rand(2, 5, 20, generator=generator) > 0.3).float()
    with torch.no_grad():
        expected, _ = theirs(memory, memory_lens, tokens, token_lens, chunk_mask.clone(), embeds)
        got, _ = ours(memory, memory_lens, tokens, token_lens, chunk_mask, embeds)
    for b, length in enumerate(token_lens.tolist()):
        torch.testing.assert_close(got[b, :length], expected[b, :length], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("conf", CONFS, ids=["default", "attention_dim", "shift0", "no_decoders2", "no_concat"])
def test_step_scores_equal_funasrs(conf):
    ours, theirs = decoder_pair(**conf)
    generator = torch.Generator().manual_seed(2)
    memory = torch.randn(20, ENC, generator=generator)
    sequence = [1, 5, 7, 3, 9, 2]
    embeds = torch.randn(len(sequence), ENC, generator=generator)
    rows = (torch.rand(len(sequence), 20, generator=generator) > 0.4).float()
    state, caches = None, None
    for step in range(1, len(sequence)):
        ys = torch.tensor(sequence[:step])
        mask_row = rows[step - 1][None, None, :]
        with torch.no_grad():
            expected, state = theirs.score(ys, state, memory, x_mask=mask_row.clone(),
                                           pre_acoustic_embeds=embeds[step - 1][None, None, :])
            got, caches = ours.score_step(ys[-1:], embeds[step - 1][None, :], memory[None], mask_row, caches)
        torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel,stride,pad", [(2, 2, (0, 1)), (3, 1, (1, 1)), (5, 3, (2, 0))])
def test_stride_conv_equals_funasrs(kernel, stride, pad):
    torch.manual_seed(0)
    theirs = FunasrConv1dSubsampling(24, 24, kernel, stride, pad)
    ours = Conv1dSubsampling(24, 24, kernel, stride, pad)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x, lengths = torch.randn(2, 17, 24), torch.tensor([17, 11])
    expected, expected_lengths = theirs(x, lengths)
    got, got_lengths = ours(x, lengths)
    torch.testing.assert_close(got, expected)
    assert got_lengths.tolist() == expected_lengths.tolist()
