"""LM training (the engine's LM task funasr_lite.train.tasks.lm and its entry point
bin/train_lm.py): batching, perplexity going down, exact resume, non-finite batches skipped."""

import math
import os

import pytest
import torch

from funasr_lite.bin import train_lm as train_lm_cli
from funasr_lite.models.lm import load_lm
from funasr_lite.models.lm.transformer_lm import TransformerLM
from funasr_lite.train.train_log import read_epoch_records
from funasr_lite.train.tasks.lm import collate_sentences, make_lm_batches as make_batches, train_lm


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)
    torch.manual_seed(0)


def test_make_batches_groups_by_length_within_the_token_budget():
    # lengths + 1 (</s>): 3, 6, 2, 5, 3, 6; sorted by (length, index): 2 0 4 3 1 5.
    lengths = [2, 5, 1, 4, 2, 5]
    # Budget 12: [2 0 4] pads to 3 x 3 = 9; adding 3 would make 4 x 5 = 20. [3 1] = 2 x 6 = 12.
    assert make_batches(lengths, batch_tokens=12, max_batch_size=10) == [[2, 0, 4], [3, 1], [5]]
    # At most two sentences per batch, whatever the budget.
    assert make_batches(lengths, batch_tokens=1000, max_batch_size=2) == [[2, 0], [4, 3], [1, 5]]
    # A sentence longer than the budget goes alone.
    assert make_batches([1, 9, 1], batch_tokens=5, max_batch_size=10) == [[0, 2], [1]]


def test_collate_pads_with_zero_and_returns_lengths():
    batch = collate_sentences([[5, 6, 7], [4], [3, 3]], [1, 0])
    ys, lengths = batch["ys"], batch["lengths"]
    assert ys.tolist() == [[4, 0, 0], [5, 6, 7]]
    assert lengths.tolist() == [1, 3]
    assert ys.dtype == torch.long and lengths.dtype == torch.long


CORPUS = ["甲乙丙丁", "乙丙丁甲乙", "丙丁甲", "丁甲乙丙丁甲"]


def _write_corpus(tmp_path):
    tokens = ["<blank>", "<s>", "</s>", "丁", "丙", "乙", "甲", "<unk>"]
    (tmp_path / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    lines = [f"utt{i:03d} {CORPUS[i % len(CORPUS)]}" for i in range(40)]
    (tmp_path / "text").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "valid").write_text("v1 甲乙丙丁\nv2 丙丁甲\n", encoding="utf-8")
    config = ("lm: transformer\nlm_conf: {embed_unit: 16, att_unit: 32, head: 4, unit: 64, layer: 2, "
              "dropout_rate: 0.1, pos_enc: sinusoidal}\noptim: adam\noptim_conf: {lr: 0.005}\n"
              "scheduler: constantlr\ntrain_conf: {max_epoch: 6, batch_tokens: 60, log_interval: 1000}\nseed: 3\n")
    (tmp_path / "lm.yaml").write_text(config, encoding="utf-8")


def _train(tmp_path, out, *overrides):
    return train_lm(str(tmp_path / "text"), str(tmp_path / "tokens.txt"), str(tmp_path / out),
                    str(tmp_path / "lm.yaml"), str(tmp_path / "valid"), list(overrides))


def test_training_on_a_repeated_corpus_lowers_perplexity(tmp_path, capsys):
    _write_corpus(tmp_path)
    exit_code = train_lm_cli.main([
        "--text", str(tmp_path / "text"), "--token_list", str(tmp_path / "tokens.txt"),
        "--valid_text", str(tmp_path / "valid"), "--output_dir", str(tmp_path / "exp"),
        "--config", str(tmp_path / "lm.yaml"), "++train_conf.max_epoch=8"])
    assert exit_code == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(printed) == 8
    valid_ppl = [float(line.split("valid ppl ")[1].split(",")[0]) for line in printed]
    # Baseline: a unigram model of the training text (</s> included) on the valid sentences.
    train_tokens = [ch for i in range(40) for ch in CORPUS[i % len(CORPUS)] + "$"]
    valid_tokens = [ch for sentence in ("甲乙丙丁", "丙丁甲") for ch in sentence + "$"]
    unigram_nll = -sum(math.log(train_tokens.count(ch) / len(train_tokens)) for ch in valid_tokens)
    unigram_ppl = math.exp(unigram_nll / len(valid_tokens))
    last_ppl = valid_ppl[-1]
    assert unigram_ppl > 4.0 and last_ppl < 0.5 * unigram_ppl and last_ppl < valid_ppl[0]
    exp = tmp_path / "exp"
    assert {"config.yaml", "model.avg1.pt", "train.log", "epoch_8.pt", "best.json", "train.done"} <= set(os.listdir(exp))
    # Retention (keep_nbest_models 2): the two best epochs by valid ppl and the newest.
    records = read_epoch_records(str(exp / "epochs.jsonl"))
    best_two = sorted((r["valid"]["ppl"], -r["epoch"]) for r in records)[:2]
    best_two = [-epoch - 1 for _, epoch in best_two]  # 0-based
    kept = {int(name[6:-3]) for name in os.listdir(exp) if name.startswith("epoch_")}
    assert kept == {e + 1 for e in best_two} | {8}
    assert "valid ppl" in (exp / "train.log").read_text(encoding="utf-8")
    # The final model (model.avg1.pt) is the best epoch's weights.
    best_epoch = best_two[0] + 1
    final = torch.load(exp / "model.avg1.pt", weights_only=True)
    best_state = torch.load(exp / f"epoch_{best_epoch}.pt", weights_only=True)["model"]
    assert final.keys() == best_state.keys() and all(torch.equal(final[k], best_state[k]) for k in final)
    # The trained model predicts the corpus: after "甲乙丙" comes "丁".
    model = load_lm(exp / "config.yaml", exp / "model.avg1.pt")
    prefix = torch.tensor([[1, 6, 5, 4]])
    assert model.score(prefix, torch.tensor([4]))[0].argmax().item() == 3
    # A sentence's perplexity under the model, recomputed here from its next-token scores.
    nll, counts = model(torch.tensor([[6, 5, 4, 3]]), torch.tensor([4]))
    assert math.exp(nll.item() / counts.item()) < last_ppl * 1.5


def test_resume_continues_to_the_same_model(tmp_path):
    _write_corpus(tmp_path)
    straight = _train(tmp_path, "straight", "++train_conf.max_epoch=3")
    first = _train(tmp_path, "resumed", "++train_conf.max_epoch=2")
    resumed = _train(tmp_path, "resumed", "++train_conf.max_epoch=3")
    assert [e["epoch"] for e in first["epochs"]] == [1, 2]
    assert [e["epoch"] for e in resumed["epochs"]] == [1, 2, 3]  # train.done of max_epoch 2 did not stop it
    assert "resumed from" in (tmp_path / "resumed" / "train.log").read_text(encoding="utf-8")
    straight_state = torch.load(tmp_path / "straight" / "epoch_3.pt", weights_only=True)
    resumed_state = torch.load(tmp_path / "resumed" / "epoch_3.pt", weights_only=True)
    for key, value in straight_state["model"].items():
        torch.testing.assert_close(resumed_state["model"][key], value, rtol=0, atol=0)
    assert resumed["epochs"][-1]["valid"]["ppl"] == straight["epochs"][-1]["valid"]["ppl"]
    # A changed model config is refused instead of silently mixing runs.
    with pytest.raises(ValueError, match="lm_conf"):
        _train(tmp_path, "resumed", "++train_conf.max_epoch=4", "++lm_conf.layer=3")


def test_non_finite_loss_is_skipped_and_counted(tmp_path, monkeypatch):
    _write_corpus(tmp_path)
    real_forward = TransformerLM.forward
    calls = {"n": 0}

    def forward_with_one_nan(self, ys, lengths):
        nll, counts = real_forward(self, ys, lengths)
        calls["n"] += 1
        if self.training and calls["n"] == 2:
            nll = nll * float("nan")
        return nll, counts

    monkeypatch.setattr(TransformerLM, "forward", forward_with_one_nan)
    result = _train(tmp_path, "exp", "++train_conf.max_epoch=1")
    assert result["nonfinite_updates"] == 1
    assert result["epochs"][0]["skipped_updates"] == 1
    assert math.isfinite(result["epochs"][0]["train"]["ppl"]) and math.isfinite(result["epochs"][0]["valid"]["ppl"])
    model = load_lm(tmp_path / "exp" / "config.yaml", tmp_path / "exp" / "model.avg1.pt")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_cli_refuses_arguments_that_are_not_overrides(tmp_path, capsys):
    _write_corpus(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        train_lm_cli.main(["--text", str(tmp_path / "text"), "--token_list", str(tmp_path / "tokens.txt"),
                           "--output_dir", str(tmp_path / "exp"), "--max_epoch", "3"])
    assert exit_info.value.code == 2
    assert "config overrides look like ++train_conf.max_epoch=3" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()


def test_rank_share_pads_so_every_rank_takes_the_same_number_of_batches():
    from funasr_lite.train.text_batches import rank_share

    batches = [[0], [1], [2], [3], [4]]
    assert rank_share(batches, 0, 1) == batches
    assert rank_share(batches, 0, 2) == [[0], [2], [4]]
    assert rank_share(batches, 1, 2) == [[1], [3], [0]]  # padded with the first batch
    assert rank_share(batches, 2, 3) == [[2], [0]]


def test_two_process_gloo_ddp_lm_training(tmp_path):
    """torchrun with 2 CPU processes: half the batches each, one set of files from rank 0."""
    import subprocess
    import sys

    from funasr_lite.train.tasks.lm import make_lm_batches as make_batches

    _write_corpus(tmp_path)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc_per_node", "2", "-m", "funasr_lite.bin.train_lm", "--device", "cpu",
               "--text", str(tmp_path / "text"), "--token_list", str(tmp_path / "tokens.txt"),
               "--valid_text", str(tmp_path / "valid"), "--output_dir", str(tmp_path / "exp"),
               "--config", str(tmp_path / "lm.yaml"), "++train_conf.max_epoch=3"]
    result = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]
    printed = [line for line in result.stdout.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in printed] == ["epoch 1", "epoch 2", "epoch 3"]  # rank 0 only
    valid_ppl = [float(line.split("valid ppl ")[1].split(",")[0]) for line in printed]
    assert valid_ppl[-1] < valid_ppl[0]
    # Each rank trains on ceil(batches / 2) batches per epoch: that many optimizer steps in all.
    lengths = [len(CORPUS[i % len(CORPUS)]) for i in range(40)]
    per_epoch = len(make_batches(lengths, 60, 256))
    assert per_epoch >= 3
    state = torch.load(tmp_path / "exp" / "epoch_3.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert state["step"] == 3 * -(-per_epoch // 2)
    assert not any(key.startswith("module.") for key in state["model"])
    log = (tmp_path / "exp" / "train.log").read_text(encoding="utf-8")
    assert f"2 processes: {-(-per_epoch // 2)} of the {per_epoch} batches per epoch" in log
    assert "[rank 0]" in log and "[rank 1]" not in log and "[progress] epoch 3/3" in log
    records = [line for line in (tmp_path / "exp" / "epochs.jsonl").read_text().splitlines() if line]
    assert len(records) == 3
    assert os.listdir(tmp_path / "exp" / "tensorboard")
    model = load_lm(tmp_path / "exp" / "config.yaml", tmp_path / "exp" / "model.avg1.pt")  # loads into a fresh LM
    assert model.score(torch.tensor([[1, 6, 5, 4]]), torch.tensor([4]))[0].argmax().item() == 3
