"""--init_encoder (funasr_lite.train.checkpoint.load_encoder_weights): a Paraformer whose encoder
is data2vec's gets exactly the pretrained encoder tensors, nothing else; the pretraining-only
parts are skipped and named; a file without a matching encoder tensor is refused."""

import logging
import os

import pytest
import torch

from funasr_lite.models import build_model
from funasr_lite.train.checkpoint import CheckpointError, load_encoder_weights
from pretrain_testkit import N_MELS, TINY_ENCODER, make_audio_dirs, write_pretrain_config
from train_testkit import TOKENS, write_data_dir, random_utterances, write_tokens

PRETRAINING_ONLY = {"encoder.mask_emb", "encoder.final_proj.weight", "encoder.final_proj.bias"}


def paraformer_config(encoder=None):
    return {
        "model": "paraformer", "input_size": N_MELS, "vocab_size": len(TOKENS),
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "predictor_weight": 1.0, "sampling_ratio": 0.4},
        "encoder": "data2vec_encoder", "encoder_conf": dict(encoder or TINY_ENCODER, feature_grad_mult=0.0),
        "decoder": "paraformer_decoder_san",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
        "predictor": "cif_predictor", "predictor_conf": {"idim": 16, "threshold": 1.0, "l_order": 1, "r_order": 1},
    }


def pretrained_checkpoint(path, encoder=None):
    """A training checkpoint of a data2vec model (model weights + the teacher under task), seeded."""
    torch.manual_seed(0)
    model = build_model({"model": "data2vec", "encoder": "data2vec_encoder", "input_size": N_MELS,
                         "encoder_conf": dict(encoder or TINY_ENCODER)})
    with torch.no_grad():  # as after training: no tensor keeps its initial value (LayerNorm ones, zero biases)
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    model.set_num_updates(0)
    model(torch.randn(2, 40, N_MELS), torch.tensor([40, 32]))  # makes the teacher
    torch.save({"model": model.state_dict(), "task": {"teacher": model.encoder.teacher_state()}, "step": 1}, path)
    return model.state_dict()


def test_exactly_the_encoder_tensors_are_copied(tmp_path, caplog):
    pretrained = pretrained_checkpoint(tmp_path / "pre.pt")
    torch.manual_seed(1)
    model = build_model(paraformer_config())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with caplog.at_level(logging.INFO):
        report = load_encoder_weights(model, tmp_path / "pre.pt")
    after = model.state_dict()
    encoder_keys = {k for k in after if k.startswith("encoder.")}
    assert set(report["skipped"]) == PRETRAINING_ONLY and not report["mismatched"] and not report["missing"]
    assert set(report["loaded"]) == encoder_keys - PRETRAINING_ONLY
    for key, value in after.items():
        if key in encoder_keys - PRETRAINING_ONLY:
            assert torch.equal(value, pretrained[key]), key
            assert not torch.equal(value, before[key]), key
        else:  # decoder, predictor, CTC and the pretraining-only parts: the fresh model's
            assert torch.equal(value, before[key]), key
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped 3 pretraining-only tensors" in messages and "encoder.final_proj.weight" in messages


def test_a_file_without_a_matching_encoder_tensor_is_refused(tmp_path):
    model = build_model(paraformer_config())
    torch.save({"decoder.embed.weight": torch.zeros(3, 4)}, tmp_path / "no_encoder.pt")
    with pytest.raises(CheckpointError, match=r"init_encoder: it has no encoder\.\* tensor among its 1"):
        load_encoder_weights(model, tmp_path / "no_encoder.pt")
    other = dict(TINY_ENCODER, encoder_embed_dim=8, encoder_ffn_embed_dim=16,
                 conv_feature_layers="[(12,2,2)] + [(12,2,2)]")
    pretrained_checkpoint(tmp_path / "other.pt", other)
    with pytest.raises(CheckpointError, match="encoder tensors match none of the model's"):
        load_encoder_weights(model, tmp_path / "other.pt")


def test_the_cli_fine_tunes_from_the_pretraining_run(tmp_path):
    """bin/train: pretrain on audio, then --init_encoder its checkpoint_latest.pt into a Paraformer
    with the encoder frozen (freeze_param): the trained encoder is the pretrained one exactly."""
    from funasr_lite.bin.train import main

    audio = make_audio_dirs(tmp_path / "audio")
    pre = tmp_path / "pre"
    assert main(["--config", write_pretrain_config(tmp_path), "--train_data", audio["train"], "--cmvn_file",
                 audio["cmvn"], "--output_dir", str(pre), "++train_conf.max_steps=3", "--device", "cpu"]) == 0
    write_data_dir(tmp_path / "asr" / "train", random_utterances(6, 1, "tr", 30, 80), N_MELS, seed=1)
    tokens = write_tokens(tmp_path / "tokens.txt")
    import yaml

    conf = paraformer_config()
    for key in ("input_size", "vocab_size"):
        conf.pop(key)
    conf.update({"frontend_conf": {"n_mels": N_MELS}, "freeze_param": "encoder", "seed": 1,
                 "dataset_conf": {"batch_bins": 200, "num_workers": 0},
                 "train_conf": {"max_epoch": 1, "best_metric": "loss", "validate_cer": False, "avg_nbest_model": 1}})
    (tmp_path / "asr.yaml").write_text(yaml.safe_dump(conf), encoding="utf-8")
    out = tmp_path / "ft"
    assert main(["--config", str(tmp_path / "asr.yaml"), "--train_data", str(tmp_path / "asr" / "train"),
                 "--token_list", tokens, "--cmvn_file", audio["cmvn"], "--output_dir", str(out),
                 "--init_encoder", str(pre / "checkpoint_latest.pt"), "--device", "cpu"]) == 0
    pretrained = torch.load(pre / "checkpoint_latest.pt", weights_only=True)["model"]
    tuned = torch.load(out / "model.avg1.pt", weights_only=True)
    shared = [k for k in tuned if k.startswith("encoder.") and k not in PRETRAINING_ONLY]
    assert shared and all(torch.equal(tuned[k], pretrained[k]) for k in shared)
    assert any(not torch.equal(tuned[k], pretrained[k]) for k in PRETRAINING_ONLY)  # not loaded
    assert f"init_encoder: {pre / 'checkpoint_latest.pt'}" in (out / "config.yaml").read_text(encoding="utf-8")
    assert "init_encoder" in (out / "train.log").read_text(encoding="utf-8")
    assert os.path.isfile(out / "train.done")
