"""SANMEncoder.forward_chunk against funasr's SANMEncoderChunkOpt.forward_chunk (the streaming
encoder of ParaformerStreaming) on the same weights, step by step: windows with the previous
look-ahead, position encoding continued across steps, K/V look-back of 0, 4 and all steps."""

import copy

import pytest
import torch

from funasr.models.scama.encoder import SANMEncoderChunkOpt

from funasr_lite.models.encoders.sanm import EncoderChunkState, SANMEncoder

CONF = dict(output_size=32, attention_heads=4, linear_units=64, num_blocks=3, dropout_rate=0.1,
            positional_dropout_rate=0.1, attention_dropout_rate=0.1, kernel_size=11, sanm_shfit=0)


def funasr_cache(look_back, chunk_size=(0, 10, 5), input_size=40):
    return {"start_idx": 0, "chunk_size": list(chunk_size), "encoder_chunk_look_back": look_back, "opt": None,
            "feats": torch.zeros(1, chunk_size[0] + chunk_size[2], input_size), "tail_chunk": False,
            "last_chunk": False}


@pytest.mark.parametrize("look_back", [0, 4, -1])
def test_streaming_steps_equal_funasrs(look_back):
    torch.manual_seed(0)
    theirs = SANMEncoderChunkOpt(input_size=40, input_layer="pe_online", chunk_size=[12, 15], stride=[8, 10],
                                 pad_left=[0, 0], encoder_att_look_back_factor=[4, 4],
                                 decoder_att_look_back_factor=[1, 1], **CONF).eval()
    ours = SANMEncoder(input_size=40, **CONF).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    cache, state = funasr_cache(look_back), EncoderChunkState(look_back=look_back)
    generator = torch.Generator().manual_seed(1)
    for step, frames in enumerate((10, 10, 10, 10, 10, 10, 7)):
        xs = torch.randn(1, frames, 40, generator=generator)
        with torch.no_grad():
            expected, _, _ = theirs.forward_chunk(xs.clone(), torch.tensor([frames]), cache=cache)
            got = ours.forward_chunk(xs, state)
        assert got.shape == expected.shape == (1, 5 + frames, 32), step
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert state.start == cache["start_idx"] == 67
    if look_back > 0:
        assert state.kv[1][0].shape == cache["opt"][1]["k"].shape == (1, 4, min(40, 60), 8)
