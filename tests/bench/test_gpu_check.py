"""bench/gpu_check.py, the prepared GPU script, tested where there is no GPU: its quick CPU mode end
to end (the four steps, the JSON, the summary that names the device and says cpu), its plan for a
GPU, the choice of implementations, and the benchmarks' refusals of settings this machine cannot
run. No timing is asserted."""

import json
import os
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "bench"))

import gpu_check  # noqa: E402


def run(script, args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1", FUNASR_LITE_NO_PROGRESS="1")
    return subprocess.run([sys.executable, os.path.join(REPO, "bench", script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_quick_cpu_mode_end_to_end(tmp_path):
    out = tmp_path / "out"
    proc = run("gpu_check.py", ["--device", "cpu", "--quick", "--impls", "ours", "--site", str(tmp_path / "none"),
                                "--out", str(out)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["gpu_check.json", "gpu_check.log", "gpu_check.md"]  # <= 8 files come back
    report = json.loads((out / "gpu_check.json").read_text())
    env = report["environment"]
    assert report["device"] == "cpu" and env["device"] == "cpu" and env["device_name"]
    assert report["probe"]["torch"] == torch.__version__ and report["probe"]["packages"]["funasr_lite"].startswith("ok")
    assert [s["name"] for s in report["steps"]] == ["train_demo_fp32", "train_demo_bf16", "decode_demo_fp32",
                                                   "decode_demo_bf16"]
    assert all(s["status"] == "ok" and "--device cpu" in s["command"] for s in report["steps"])
    train = {(r["precision"], r["impl"]): r for r in report["train"]}
    decode = {(r["precision"], r["impl"]): r for r in report["decode"]}
    assert set(train) == set(decode) == {("fp32", "ours"), ("bf16", "ours")}
    assert all(r["frames_per_s"] > 0 and r["x_real_time"] > 0 for r in train.values())
    assert all(r["rtf"] > 0 and r["mode"] == "batched" and r["card_over_rtf"] is None for r in decode.values())
    for step in report["steps"]:  # each step's own report, with the device and precision it ran
        assert step["report"]["environment"]["precision"] == step["report"]["precision"]
        assert step["report"]["environment"]["device"] == "cpu"
    markdown = (out / "gpu_check.md").read_text()
    assert f"# GPU check: {env['device_name']} (cpu)" in markdown and "**Device: cpu.**" in markdown
    assert "not a GPU measurement" in markdown and "0.0093" in markdown and "compute only" in markdown
    assert "OURS ALONE" not in markdown and "--impls ours (as asked)" in markdown
    assert "===== decode_demo_bf16" in (out / "gpu_check.log").read_text()


def test_the_gpu_plan_and_the_choice_of_implementations():
    steps = gpu_check.plan("cuda", False, "ours,funasr", 4)
    names = [s[0] for s in steps]
    assert names[0] == "decode_large_fp32"  # the card comparison first, in case the budget runs out
    assert set(names) == {"decode_large_fp32", "decode_large_bf16", "decode_large_fp16", "train_large_fp32",
                          "train_large_bf16", "train_demo_fp32", "train_demo_bf16"}
    for name, script, arguments, limit in steps:
        joined = " ".join(arguments)
        assert "--device cuda" in joined and f"--precision {name.rsplit('_', 1)[1]}" in joined
        assert "--impls ours,funasr" in joined and 0 < limit <= 300
        if script == "benchmark_decode.py":
            assert "paraformer_sanm.yaml" in joined and "--modes batched" in joined
    assert gpu_check.choose_impls("auto", {"funasr_paraformer": "ok"})[0] == "ours,funasr"
    impls, note = gpu_check.choose_impls("auto", {"funasr_paraformer": "ModuleNotFoundError: No module named 'x'"})
    assert impls == "ours" and "OURS ALONE" in note and "No module named 'x'" in note
    assert gpu_check.choose_impls("auto", {"error": "boom"})[0] == "ours"


def test_summary_puts_the_card_beside_paraformer_large_only():
    decode_report = {"precision": "bf16", "impls": ["ours", "funasr"], "rows": [
        {"description": "paraformer_sanm.yaml, random weights, random features", "mode": "batched",
         "ours": {"rtf": 0.00186, "utterances": 64, "audio_s": 290.0}, "funasr": {"error": "RuntimeError: x"},
         "throughput_ratio_ours_over_funasr": None, "token_match": None},
        {"description": "demo.yaml, random weights, random features", "mode": "batched",
         "ours": {"rtf": 0.001}, "funasr": {"rtf": 0.002}, "throughput_ratio_ours_over_funasr": 2.0,
         "token_match": 1.0}]}
    rows = gpu_check.decode_rows([{"script": "benchmark_decode.py", "report": decode_report}])
    assert rows[0]["card_over_rtf"] == pytest.approx(5.0) and rows[1]["note"] == "FAILED: RuntimeError: x"
    assert rows[2]["card_over_rtf"] is None and rows[2]["speed_up"] == 2.0
    result = {"probe": {"python": "3.12.3", "torch": "2.11.0+cu130", "cuda_available": True,
                        "cuda_devices": ["NVIDIA H100 80GB HBM3"], "packages": {}},
              "environment": {"device_name": "NVIDIA H100 80GB HBM3", "git_commit": "abc"}, "device": "cuda",
              "quick": False, "date": "2026-12-07", "budget_s": 420, "wall_s": 300.0, "impls_note": "ours vs FunASR",
              "steps": [{"name": "decode_large_bf16", "script": "benchmark_decode.py", "status": "ok",
                         "wall_s": 40.0, "limit_s": 150, "report": decode_report}]}
    markdown = gpu_check.summary_markdown(result)
    assert markdown.startswith("# GPU check: NVIDIA H100 80GB HBM3 (cuda)") and "Device: cpu" not in markdown
    assert "| paraformer_sanm.yaml | batched | bf16 | ours | 0.00186 | 5.0 |" in markdown
    assert "compute only" in markdown


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without CUDA")
def test_benchmarks_refuse_what_this_machine_cannot_run():
    for script in ("benchmark_train.py", "benchmark_decode.py"):
        proc = run(script, ["--device", "cuda"], timeout=120)
        assert proc.returncode != 0 and "sees no CUDA device" in proc.stderr
        proc = run(script, ["--device", "cpu", "--precision", "fp16"], timeout=120)
        assert proc.returncode != 0 and "fp16 is a CUDA path" in proc.stderr
    proc = run("benchmark_decode.py", ["--device", "cuda", "--ours_int8"], timeout=120)
    assert proc.returncode != 0 and "--ours_int8 is a CPU path" in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks what it does on a machine without CUDA")
def test_gpu_check_without_cuda_runs_nothing_and_says_why(tmp_path):
    proc = run("gpu_check.py", ["--impls", "ours", "--site", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert proc.returncode == 1
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [(s["name"], s["status"]) for s in report["steps"]] == [("all", "skipped")]
    markdown = (tmp_path / "gpu_check.md").read_text()
    assert markdown.startswith("# GPU check: no CUDA device seen (cuda)") and "torch sees no CUDA device" in markdown


# What the GPU image lacks (the device tool's KINDS.md lists what it has): hidden by an import
# blocker in a sitecustomize.py on PYTHONPATH, which the harness hands on to every step and worker.
IMAGE_LACKS = ("funasr", "kaldiio", "librosa", "rapidfuzz", "torch_complex", "hydra", "omegaconf", "jieba",
               "soundfile", "audioread", "soxr", "pooch", "decorator", "jaconv", "jamo", "modelscope")
BLOCKER = '''import importlib.abc, os, sys
BLOCKED = {blocked!r}
def _allowed(name, path):
    if path is not None:  # a submodule: allowed where its package came from the allowed folder
        return any(os.path.realpath(p).startswith({allowed!r}) for p in path)
    return any(os.path.realpath(p).startswith({allowed!r}) and os.path.exists(os.path.join(p, name))
               for p in sys.path if os.path.isdir(p))
class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED and not _allowed(name, path):
            raise ModuleNotFoundError("No module named %r (not in the GPU image)" % name, name=name)
        return None
sys.meta_path.insert(0, _Blocker())
'''


def image_like_env(tmp_path, allowed):
    """PYTHONPATH with a sitecustomize that refuses IMAGE_LACKS, except from the folder ``allowed``."""
    site = tmp_path / "image"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.format(blocked=set(IMAGE_LACKS), allowed=str(allowed)))
    return dict(os.environ, PYTHONPATH=str(site), OMP_NUM_THREADS="1", FUNASR_LITE_NO_PROGRESS="1")


def test_on_an_image_without_funasr_it_runs_ours_alone_and_says_so(tmp_path):
    out = tmp_path / "out"
    env = image_like_env(tmp_path, allowed=str(tmp_path / "nothing"))
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "gpu_check.py"), "--device", "cpu", "--quick",
                           "--only", "train_demo_fp32", "--site", str(tmp_path / "none"), "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["impls"] == "ours" and "not in the GPU image" in report["probe"]["funasr_paraformer"]
    assert report["probe"]["packages"]["kaldiio"].startswith("fails") and report["probe"]["packages"]["torch"]
    assert [(r["impl"], r["precision"]) for r in report["train"]] == [("ours", "fp32")]
    assert "OURS ALONE" in (out / "gpu_check.md").read_text()


def test_the_packed_oracle_packages_stand_in_for_the_missing_ones(tmp_path):
    """--pack copies funasr & co. without compiled files; on the image-like PYTHONPATH FunASR then
    imports from the pack alone and is timed beside ours."""
    site = tmp_path / "gpu_site"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "gpu_check.py"), "--pack", "--site", str(site)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    packed = json.loads((site / "PACKED.json").read_text())
    assert set(packed["versions"]) == {"funasr", "kaldiio", "librosa", "rapidfuzz", "torch-complex"}
    assert not [f for _, _, files in os.walk(site) for f in files if f.endswith((".so", ".pyc"))]
    assert 1 < packed["mb"] < 40  # travels well inside the device tool's 64 MiB
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "bench", "gpu_check.py"), "--device", "cpu", "--quick",
                           "--only", "train_demo_fp32", "--site", str(site), "--out", str(out)],
                          cwd=REPO, env=image_like_env(tmp_path, allowed=str(site)), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["impls"] == "ours,funasr" and report["packed"]["versions"] == packed["versions"]
    assert str(site) in report["probe"]["packages"]["funasr"]
    train = {r["impl"]: r for r in report["train"]}
    assert train["ours"]["frames_per_s"] > 0 and train["funasr"]["frames_per_s"] > 0 and train["ours"]["ratio"] > 0
