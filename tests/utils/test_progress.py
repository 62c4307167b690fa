"""funasr_lite.utils.progress: the live status line, durations, ETA and [progress] log lines."""
import io

from funasr_lite.utils.progress import (
    StatusLine,
    eta_seconds,
    format_duration,
    last_progress_message,
    progress_message,
)


def test_format_duration_and_eta():
    assert format_duration(0) == "0:00"
    assert format_duration(75) == "1:15"
    assert format_duration(3725) == "1:02:05"
    assert format_duration(None) == "?" and format_duration(-1) == "?"
    # 2 of 8 jobs in 30 s: 6 more at 15 s each.
    assert eta_seconds(30.0, 2, 8) == 90.0
    assert eta_seconds(30.0, 0, 8) is None
    assert eta_seconds(30.0, 8, 8) == 0.0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_status_line_text_counts_jobs_and_estimates_the_rest():
    clock = FakeClock()
    stream = io.StringIO()
    status = StatusLine("decode", 4, stream=stream, enabled=True, clock=clock, detail=lambda: "epoch 2/7")
    clock.now += 12
    assert status.text() == "decode: 0/4 done, elapsed 0:12, ETA ? | epoch 2/7"
    clock.now += 8
    status.update(1)  # 1 of 4 in 20 s: 3 more at 20 s
    assert stream.getvalue() == "\rdecode: 1/4 done, elapsed 0:20, ETA 1:00 | epoch 2/7"
    status.close()
    assert stream.getvalue().endswith("\n")


def test_status_line_count_callable_and_disabled_line_writes_nothing():
    clock = FakeClock()
    status = StatusLine("x", 3, stream=io.StringIO(), enabled=True, clock=clock, count=lambda: 2)
    clock.now += 10
    assert status.text() == "x: 2/3 done, elapsed 0:10, ETA 0:05"
    single = StatusLine("train", 1, stream=io.StringIO(), enabled=True, clock=clock, detail=lambda: "epoch 1/7")
    clock.now += 5
    assert single.text() == "train: elapsed 0:05 | epoch 1/7"  # one job: no k/N, the job's line has the ETA
    single.update(1)
    assert single.text() == "train: done, elapsed 0:05 | epoch 1/7"
    quiet = io.StringIO()
    with StatusLine("x", 3, stream=quiet, enabled=False) as line:
        line.update(3)
    assert quiet.getvalue() == ""


def test_status_line_redraws_over_a_longer_previous_line():
    stream = io.StringIO()
    details = iter(["a long detail text", None])
    status = StatusLine("j", 2, stream=stream, enabled=True, clock=FakeClock(), detail=lambda: next(details))
    status.draw()
    first = stream.getvalue()
    status.draw()
    second = stream.getvalue()[len(first):]
    # The shorter line is padded with blanks so nothing of the longer one stays visible.
    assert second.startswith("\rj: 0/2 done") and len(second) == len(first)


def test_last_progress_message_reads_the_newest_marked_line(tmp_path):
    log = tmp_path / "train.log"
    assert last_progress_message(str(log)) is None  # no file yet
    log.write_text("2026 INFO: starting\n", encoding="utf-8")
    assert last_progress_message(str(log)) is None
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"2026 (trainer:1) INFO: {progress_message('epoch 1/3 step 10')}\n")
        f.write("2026 INFO: something else\n")
        f.write(f"2026 (trainer:1) INFO: {progress_message('epoch 2/3 step 20, ETA 1:00')}\n")
        f.write("x" * 100 + "\n")
    assert last_progress_message(str(log)) == "epoch 2/3 step 20, ETA 1:00"
    # Only the tail of a long log is read.
    assert last_progress_message(str(log), tail_bytes=50) is None
