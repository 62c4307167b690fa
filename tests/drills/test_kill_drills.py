"""Kill drills in CI (tests/drills/kill_drill.py, small): the trainer killed -9 three times (once
inside a checkpoint write) resumes to the uninterrupted run's exact weights with no corrupt
checkpoint; a full disk during a checkpoint write names the file and keeps the earlier ones; a
killed fbank job and a killed decode job finish when rerun."""

import os
import random
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "drills"))
import drill_kit as kit  # noqa: E402
import kill_drill  # noqa: E402

pytestmark = pytest.mark.drill


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("kill"))
    paths = kill_drill.make_training(os.path.join(root, "train"))
    reference = kill_drill.reference_run(paths, root)
    reference["total_steps"] = kill_drill._latest_step(reference["exp"])
    return root, paths, reference


def test_trainer_killed_three_times_resumes_to_the_same_weights(training):
    root, paths, reference = training
    killed = kill_drill.killed_training(paths, root, 3, reference["total_steps"], random.Random(0))
    events = killed["events"]
    in_write = [e for e in events if e.get("where", "").startswith("inside a checkpoint write")]
    assert in_write and in_write[0]["killed"], events
    assert in_write[0]["temp_files_left"] >= 1  # the half-written temp file; the real name untouched
    assert sum(e["killed"] for e in events) == 3, events
    # the other kills came where the run's progress put them: right after the chosen update
    held = [e for e in events if e.get("target_step") is not None]
    assert len(held) == 2 and all(e["held_at_step"] == e["target_step"] for e in held), events
    for event in events:
        assert not event.get("corrupt"), event
    assert killed["final"]["corrupt"] == [] and killed["tracebacks"] == 0
    assert killed["final"]["temp_files"] == []  # the rerun removed what the killed write left
    assert killed["resumes"] >= 1
    assert events[-1].get("exit", 0) == 0
    assert kill_drill.weights_equal(kill_drill.final_weights(reference["exp"]), kill_drill.final_weights(killed["exp"]))


def test_disk_full_during_a_checkpoint_write(training):
    root, paths, _ = training
    result = kill_drill.disk_full_drill(paths, root)
    assert result["exit"] == 1 and not result["traceback"]
    assert result["error"] and os.path.join(result["exp"], "checkpoint_latest.pt") in result["error"]
    assert "cannot write checkpoint" in result["error"] and "MiB free there" in result["error"]
    assert result["checkpoints_loaded"] >= 1 and result["corrupt"] == [] and result["temp_files_left"] == []
    assert result["latest_step"] == 4  # the 2nd write (step 4) is the last good one; the 3rd failed
    assert result["rerun_exit"] == 0 and result["rerun_resumed"]


def test_fbank_job_killed_mid_way_is_finished_by_a_rerun(tmp_path):
    result = kill_drill.fbank_drill(str(tmp_path), count=150)
    assert result["reference_exit"] == 0 and result["killed_mid_way"], result
    assert not result["complete_after_kill"]
    assert result["rerun_exit"] == 0 and not result["rerun_traceback"]
    assert result["rerun_equals_reference"]


def test_decode_job_killed_mid_way_is_finished_by_a_rerun(tmp_path):
    model_dir = kit.write_model_dir(str(tmp_path / "model"))
    result = kill_drill.decode_drill(str(tmp_path), model_dir, count=120)
    assert result["reference_exit"] == 0 and result["killed_mid_way"], result
    assert not result["complete_after_kill"]
    assert result["rerun_exit"] == 0 and not result["rerun_traceback"]
    assert result["rerun_equals_reference"]
