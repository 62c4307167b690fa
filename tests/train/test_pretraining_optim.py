"""FunASR's data2vec pretraining optimizer and schedule (optim: fairseq_adam, scheduler: tri_stage)
against funasr's own classes (the oracle), update by update."""

import pytest
import torch

from funasr.optimizers.fairseq_adam import FairseqAdam as FunasrFairseqAdam
from funasr.schedulers.tri_stage_scheduler import TriStageLR as FunasrTriStageLR

from funasr_lite.train.optim import build_optimizer
from funasr_lite.train.scheduler import build_scheduler


@pytest.mark.parametrize("max_update,phase_ratio", [(100, [0.03, 0.9, 0.07]), (37, [0.1, 0.6, 0.3]),
                                                    (20, [0.5, 0.0, 0.5])])
def test_tri_stage_lr_equals_funasrs_at_every_update(max_update, phase_ratio):
    ours_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=5e-4)
    theirs_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=5e-4)
    ours = build_scheduler(ours_opt, "tri_stage", {"phase_ratio": phase_ratio, "max_update": max_update})
    theirs = FunasrTriStageLR(theirs_opt, phase_ratio=phase_ratio)
    theirs.init_tri_stage_scheudler(max_update=max_update)  # (sic) funasr's name
    for _ in range(max_update + 5):  # past the end: final_lr_scale
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(theirs_opt.param_groups[0]["lr"], rel=1e-12, abs=0)
        ours_opt.step()
        theirs_opt.step()
        ours.step()
        theirs.step()


def test_tri_stage_refuses_ratios_that_do_not_add_up():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="phase_ratio must be three fractions adding up to 1"):
        build_scheduler(optimizer, "tri_stage", {"phase_ratio": [0.5, 0.4], "max_update": 10})


def test_fairseq_adam_equals_funasrs_update_by_update():
    torch.manual_seed(0)
    ours_model, theirs_model = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
    theirs_model.load_state_dict(ours_model.state_dict())
    conf = {"lr": 5e-3, "adam_betas": [0.9, 0.98], "adam_eps": 1e-6, "weight_decay": 0.01}
    ours = build_optimizer(ours_model.parameters(), "fairseq_adam", conf)
    theirs = FunasrFairseqAdam(theirs_model.parameters(), **conf)
    for step in range(8):
        x = torch.randn(5, 6)
        for model, optimizer in ((ours_model, ours), (theirs_model, theirs)):
            optimizer.zero_grad()
            (model(x) ** 2).mean().backward()
            optimizer.step()
        for a, b in zip(ours_model.parameters(), theirs_model.parameters()):
            assert torch.allclose(a, b, rtol=0, atol=1e-7), step
    # Its state goes into training checkpoints, which are read with weights_only=True.
    import io

    buffer = io.BytesIO()
    torch.save(ours.state_dict(), buffer)
    buffer.seek(0)
    restored = build_optimizer(ours_model.parameters(), "fairseq_adam", conf)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert int(restored.state_dict()["state"][0]["step"]) == 8
