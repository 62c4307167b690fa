"""egs/aishell1/local/plot_curves.py: per-epoch loss/CER/acc curves from epochs.jsonl into <exp>/curves.png."""
import json
import os
import subprocess
import sys

from funasr_lite.train.train_log import append_epoch_record

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "egs", "aishell1", "local"))

import plot_curves  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_exp(exp):
    os.makedirs(exp, exist_ok=True)
    append_epoch_record(str(exp), {"epoch": 1, "train": {"loss": 5.0, "acc": 0.2}, "valid": {"loss": 4.0, "acc": 0.3, "cer": 80.0}})
    append_epoch_record(str(exp), {"epoch": 2, "train": {"loss": 3.0, "acc": 0.5}, "valid": {"loss": 3.5, "acc": 0.45, "cer": 60.0}})
    append_epoch_record(str(exp), {"epoch": 2, "train": {"loss": 2.5, "acc": 0.55}, "valid": {"loss": 3.0, "acc": 0.5, "cer": 55.0}})  # resumed
    append_epoch_record(str(exp), {"epoch": 3, "train": {"loss": float("nan"), "acc": 0.6}, "valid": {"loss": 2.0, "acc": 0.6, "cer": 40.0}})


def test_series_take_one_value_per_epoch_and_leave_out_nulls(tmp_path):
    _write_exp(tmp_path / "exp")
    series = plot_curves.curve_series(plot_curves.load_records(str(tmp_path / "exp")))
    assert list(series) == ["loss", "cer", "acc"]  # no ppl in an ASR experiment
    assert series["loss"]["train"] == [(1, 5.0), (2, 2.5)]  # epoch 2: the resumed record; epoch 3: NaN
    assert series["loss"]["valid"] == [(1, 4.0), (2, 3.0), (3, 2.0)]
    assert series["cer"] == {"train": [], "valid": [(1, 80.0), (2, 55.0), (3, 40.0)]}


def test_cli_writes_curves_png_with_the_plotted_values(tmp_path):
    _write_exp(tmp_path / "exp")
    result = subprocess.run([sys.executable, os.path.join(REPO, "egs", "aishell1", "local", "plot_curves.py"), str(tmp_path / "exp")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    png = tmp_path / "exp" / "curves.png"
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    assert "curves.png (loss, cer, acc)" in result.stdout
    # The figure holds exactly these values: one panel per metric, train and valid lines.
    series = plot_curves.curve_series(plot_curves.load_records(str(tmp_path / "exp")))
    figure = plot_curves.plot_curves(series, str(tmp_path / "again.png"))
    panels = {ax.get_title(): {line.get_label(): list(zip(line.get_xdata(), line.get_ydata())) for line in ax.get_lines()}
              for ax in figure.axes}
    assert panels["cer"] == {"valid": [(1, 80.0), (2, 55.0), (3, 40.0)]}
    assert panels["acc"]["train"] == [(1, 0.2), (2, 0.55), (3, 0.6)]


def test_old_experiment_from_best_json_and_a_missing_dir_is_named(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "best.json").write_text(json.dumps({"history": [{"epoch": 1, "step": 5, "loss": 3.0, "cer": 70.0},
                                                           {"epoch": 2, "step": 9, "loss": 2.0, "cer": 50.0}]}))
    assert plot_curves.main([str(old), "--metrics", "cer"]) == 0
    assert (old / "curves.png").read_bytes()[:8] == PNG_MAGIC
    result = subprocess.run([sys.executable, os.path.join(REPO, "egs", "aishell1", "local", "plot_curves.py"), str(tmp_path / "nothing")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "nothing: no epochs.jsonl or best.json" in result.stderr and "Traceback" not in result.stderr
