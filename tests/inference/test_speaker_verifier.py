"""funasr_lite.SpeakerVerifier on FunASR-layout x-vector model dirs made from funasr's own classes.

The reference embedding is FunASR's sv inference computed with funasr's parts: funasr's WavFrontend
(the config's frontend_conf, no CMVN, dither 0) -> encoder -> pooling without lengths ->
``resnet1_dense``, one recording at a time. Both dir layouts load: the released one (sv.yaml +
sv.pb + configuration.json) and config.yaml + model.pt.
"""

import io
import json
import os

import numpy as np
import pytest
import soundfile
import torch
import yaml

from funasr_lite.api import AudioInputError
from funasr_lite.inference.model_dir import ModelDirError
from funasr_xvector import build_funasr_sv, tiny_sv_config  # tests/funasr_xvector.py

SAMPLE_RATE = 16000
ATOL = 1e-5  # fbank by two implementations (float32), then a float32 network: measured ~1e-7
RECORDINGS = {"spk_a1": (0, 1.3), "spk_a2": (1, 0.9), "spk_b1": (2, 2.1)}  # name: (seed, seconds)

# configuration.json of the released ModelScope dir (FunASR's egs/cnceleb/resnet34/configuration.json)
RELEASED_CONFIGURATION = {
    "framework": "pytorch", "task": "speaker-verification",
    "model": {"type": "generic-sv", "sv_model_name": "sv.pb",
              "model_config": {"type": "pytorch", "code_base": "funasr", "mode": "sv", "lang": "zh-cn",
                               "batch_size": 1, "sv_model_name": "sv.pb", "sv_model_config": "sv.yaml"}},
    "pipeline": {"type": "sv-inference"},
}


def synth_samples(seed: int, seconds: float) -> np.ndarray:
    """A voiced-like signal (harmonics of a wobbling pitch, noise) quantised to int16 / 32768."""
    generator = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 110 + 40 * seed + 15 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    signal = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2 + generator.normal(0, 0.01, t.size)
    return np.round(np.clip(signal, -1, 1) * 32767).astype(np.int16).astype(np.float32) / 32768.0


def write_dir(path, config, model, layout: str) -> str:
    os.makedirs(path, exist_ok=True)
    config_name, weights_name = ("sv.yaml", "sv.pb") if layout == "released" else ("config.yaml", "model.pt")
    with open(os.path.join(path, config_name), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    torch.save(model.state_dict(), os.path.join(path, weights_name))
    if layout == "released":
        with open(os.path.join(path, "configuration.json"), "w", encoding="utf-8") as f:
            json.dump(RELEASED_CONFIGURATION, f)
    return str(path)


@pytest.fixture(scope="module")
def config():
    return tiny_sv_config(n_mels=80, vocab=9)


@pytest.fixture(scope="module")
def funasr_model(config):
    return build_funasr_sv(config, len(config["token_list"]), seed=11)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wav")
    paths, samples = {}, {}
    for name, (seed, seconds) in RECORDINGS.items():
        samples[name] = synth_samples(seed, seconds)
        paths[name] = str(folder / f"{name}.wav")
        soundfile.write(paths[name], samples[name], SAMPLE_RATE, subtype="PCM_16")
    return paths, samples


@pytest.fixture(scope="module")
def expected(config, funasr_model, recordings):
    """FunASR's embeddings: funasr's WavFrontend (dither 0) + funasr's network, one at a time."""
    from funasr.frontends.wav_frontend import WavFrontend

    frontend = WavFrontend(cmvn_file=None, dither=0.0, **config["frontend_conf"])
    embeddings = {}
    for name, samples in recordings[1].items():
        feats, _ = frontend(torch.from_numpy(samples)[None], torch.tensor([samples.size]))
        embeddings[name] = funasr_model.embedding(feats[0]).numpy()
    return embeddings


@pytest.fixture(scope="module", params=["released", "1.x"])
def verifier(request, tmp_path_factory, config, funasr_model):
    from funasr_lite import SpeakerVerifier

    path = write_dir(tmp_path_factory.mktemp(f"sv_{request.param}"), config, funasr_model, request.param)
    return SpeakerVerifier(path)


def test_embed_equals_funasr(verifier, recordings, expected):
    paths, samples = recordings
    names = sorted(paths)
    embeddings = verifier.embed([paths[name] for name in names])  # a list: one padded batch
    assert isinstance(embeddings, list) and len(embeddings) == len(names)
    worst = 0.0
    for name, embedding in zip(names, embeddings):
        assert embedding.shape == expected[name].shape == (16,) and embedding.dtype == np.float32
        worst = max(worst, float(np.abs(embedding - expected[name]).max()))
    print(f"\nSpeakerVerifier vs funasr: max |difference| = {worst:.2e}")
    assert worst <= ATOL
    # one input gives one embedding, whatever its form: path, wav bytes, float samples, int16 samples
    name = "spk_b1"
    with open(paths[name], "rb") as f:
        wav_bytes = f.read()
    int16 = np.round(samples[name] * 32768).astype(np.int16)
    for audio in (paths[name], wav_bytes, samples[name], int16, torch.from_numpy(samples[name])):
        np.testing.assert_allclose(verifier.embed(audio), expected[name], rtol=0, atol=ATOL)


def test_score_and_verify(verifier, recordings, expected):
    paths, samples = recordings
    a, b = paths["spk_a1"], paths["spk_b1"]
    assert verifier.score(a, a) == pytest.approx(1.0, abs=1e-6)
    reference = float(np.dot(expected["spk_a1"], expected["spk_b1"])
                      / (np.linalg.norm(expected["spk_a1"]) * np.linalg.norm(expected["spk_b1"])))
    score = verifier.score(a, samples["spk_b1"])
    assert score == pytest.approx(reference, abs=1e-5)
    assert score == pytest.approx(verifier.score(b, a), abs=1e-7)
    assert verifier.verify(a, b, threshold=score - 1e-3) == (True, pytest.approx(score, abs=1e-7))
    assert verifier.verify(a, b, threshold=score + 1e-3)[0] is False
    assert verifier.threshold == 0.9465  # FunASR's sv_threshold
    assert verifier.verify(a, a)[0] is True


def test_bad_inputs_are_named(verifier, recordings, tmp_path):
    paths, _ = recordings
    missing = str(tmp_path / "nowhere.wav")
    with pytest.raises(AudioInputError, match="nowhere.wav: no such file"):
        verifier.embed(missing)
    with pytest.raises(AudioInputError, match=r"audio: no frames"):
        verifier.embed(np.zeros(0, dtype=np.float32))
    with pytest.raises(AudioInputError, match=r"audio: no frames"):
        verifier.embed(np.zeros(100, dtype=np.float32))  # 6 ms: shorter than one 25 ms window
    empty_wav = io.BytesIO()
    soundfile.write(empty_wav, np.zeros(0, dtype=np.float32), SAMPLE_RATE, format="WAV")
    with pytest.raises(AudioInputError, match="no frames"):
        verifier.embed(empty_wav.getvalue())
    with pytest.raises(AudioInputError, match="input nowhere.*no such file"):
        verifier.embed([paths["spk_a1"], missing])
    with pytest.raises(AudioInputError, match=r"input utt2: no frames"):
        verifier.embed([paths["spk_a1"], np.zeros(10, dtype=np.float32)])
    with pytest.raises(AudioInputError, match="^b: .*nowhere.wav"):
        verifier.verify(paths["spk_a1"], missing)
    with pytest.raises(AudioInputError, match="one recording expected"):
        verifier.score([paths["spk_a1"]], paths["spk_a1"])


def test_model_dir_errors(tmp_path, config, funasr_model):
    from funasr_lite import SpeakerVerifier

    with pytest.raises(ModelDirError, match="no such model dir"):
        SpeakerVerifier(str(tmp_path / "absent"))
    more_speakers = dict(config, token_list=config["token_list"] + ["spk_extra"])
    path = write_dir(tmp_path / "mismatch", more_speakers, funasr_model, "1.x")
    with pytest.raises(ModelDirError, match=r"decoder.output_dense.weight has 9 rows .* lists 10"):
        SpeakerVerifier(path)
    wider = dict(config, decoder_conf=dict(config["decoder_conf"], num_nodes_resnet1=20))
    path = write_dir(tmp_path / "wider", wider, funasr_model, "1.x")
    with pytest.raises(ModelDirError, match="shape mismatches: decoder.resnet1_bn"):
        SpeakerVerifier(path)
    asr = tmp_path / "asr"
    asr.mkdir()
    (asr / "config.yaml").write_text("model: Paraformer\nencoder: SANMEncoder\n")
    with pytest.raises(ModelDirError, match="not a speaker model config"):
        SpeakerVerifier(str(asr))


def test_checkpoint_choice(tmp_path, config, funasr_model, recordings, expected):
    from funasr_lite import SpeakerVerifier

    path = write_dir(tmp_path / "dir", config, funasr_model, "1.x")
    os.rename(os.path.join(path, "model.pt"), os.path.join(path, "model.avg3.pt"))
    with pytest.raises(ModelDirError, match=r"no weights \(tried model.pt, model.pb, sv.pb\)"):
        SpeakerVerifier(path)
    with pytest.raises(ModelDirError, match="no checkpoint"):
        SpeakerVerifier(path, checkpoint="model.avg5.pt")
    verifier = SpeakerVerifier.from_model_dir(path, checkpoint="model.avg3.pt")
    np.testing.assert_allclose(verifier.embed(recordings[0]["spk_a2"]), expected["spk_a2"], rtol=0, atol=ATOL)


def test_wav_scp_and_stored_features(verifier, recordings, expected, tmp_path):
    """A wav.scp gives a list in its order; a data dir's feats.scp (raw fbank) gives the same."""
    import kaldiio

    paths, samples = recordings
    names = ["spk_b1", "spk_a1"]
    (tmp_path / "wav.scp").write_text("".join(f"{name} {paths[name]}\n" for name in names))
    from_scp = verifier.embed(str(tmp_path / "wav.scp"))
    data_dir = tmp_path / "data"  # stored features only: no wav.scp to fall back on
    data_dir.mkdir()
    with kaldiio.WriteHelper(f"ark,scp:{data_dir / 'feats.ark'},{data_dir / 'feats.scp'}") as writer:
        for name in names:
            writer(name, verifier.loaded.frontend.fbank(samples[name]).numpy())
    from_feats = verifier.embed(str(data_dir))
    for name, a, b in zip(names, from_scp, from_feats):
        np.testing.assert_allclose(a, expected[name], rtol=0, atol=ATOL)
        np.testing.assert_allclose(b, expected[name], rtol=0, atol=ATOL)
