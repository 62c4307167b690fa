#!/usr/bin/env python3
"""The server under load (issue #24): requests/s and latency for 5 s uploads through the
OpenAI-compatible endpoint, ours beside FunASR's own OpenAI-compatible app (funasr/bin/_server_app.py)
on the same model dir; concurrent real-time WebSocket streams; server RSS over many requests.

    python bench/benchmark_server.py --model_dir exp/demo_bicif/model_dir --data_dir data/test \\
        --online_model_dir exp/demo_streaming \\
        --concurrency 1 2 4 --requests 200 --streams 1 2 4 8 --rss_requests 10000 --funasr \\
        --out bench/results/server.json                                     # the acceptance run

Clips: the data dir's utterances concatenated and cut into --clip_s (5 s) pieces, written as wav.
Each server runs in its own process (ours: ``python -m funasr_lite.bin.serve``; FunASR's: its
``create_app(device="cpu", model_path=DIR)`` under uvicorn); clients are threads of this process
sending multipart uploads. Rows: requests/s, latency p50/p95, server RSS after the row, and the
share of answers whose text equals ours (whitespace ignored: FunASR's app separates a Chinese
model's characters with spaces). Streams: N clients each send one clip at real time (60 ms
messages every 60 ms, FunASR's pacing) in online mode; final latency = end message to final answer.
RSS: --rss_requests uploads (2 clients), server VmRSS sampled 20 times; growth = end - after 10%.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np

import harness


def make_clips(data_dir, clip_s, count, out_dir):
    """Up to ``count`` wavs of ``clip_s`` seconds cut from the data dir's audio, in order."""
    import soundfile

    from funasr_lite.data.datadir import read_kv

    rate = 16000
    need = int(clip_s * rate)
    clips, buffer = [], np.zeros(0, dtype=np.float32)
    for key, path in read_kv(os.path.join(data_dir, "wav.scp")).items():
        audio, sr = soundfile.read(path, dtype="float32")
        if sr != rate:
            raise SystemExit(f"{path}: {sr} Hz (the benchmark cuts 16 kHz audio)")
        buffer = np.concatenate([buffer, audio if audio.ndim == 1 else audio.mean(1)])
        while buffer.size >= need and len(clips) < count:
            path_out = os.path.join(out_dir, f"clip{len(clips):03d}.wav")
            soundfile.write(path_out, buffer[:need], rate, subtype="PCM_16")
            clips.append(path_out)
            buffer = buffer[need:]
        if len(clips) >= count:
            break
    if not clips:
        raise SystemExit(f"{data_dir}: not {clip_s} s of audio")
    return clips


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def upload(url, data, model):
    boundary = "----benchserver"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{model}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="clip.wav"\r\n'
            f"Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "/v1/audio/transcriptions", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())["text"]


class Server:
    """A server process (harness.Service): ``ours`` (bin/serve) or ``funasr`` (FunASR's app under uvicorn)."""

    def __init__(self, kind, model_dir, checkpoint, online_dir, log):
        # the server runs in the repository root: paths given relative to the caller's directory
        model_dir = os.path.abspath(model_dir)
        online_dir = os.path.abspath(online_dir) if online_dir else None
        self.kind, self.port = kind, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if kind == "ours":
            argv = [sys.executable, "-m", "funasr_lite.bin.serve", "--model_dir", model_dir, "--port", str(self.port),
                    "--max_pending", "100000", "--max_connections", "1000"]
            if checkpoint:
                argv += ["--checkpoint", checkpoint]
            if online_dir:
                argv += ["--online_model_dir", online_dir]
            self.model = "ours"
        else:
            code = ("import sys, uvicorn\nfrom funasr.bin._server_app import create_app\n"
                    "uvicorn.run(create_app(device='cpu', model_path=sys.argv[1]), host='127.0.0.1', "
                    "port=int(sys.argv[2]), log_level='warning')\n")
            argv = [sys.executable, "-c", code, model_dir, str(self.port)]
            self.model = "custom"
        self.service = harness.Service(argv, log, threads=int(os.environ.get("OMP_NUM_THREADS", "2")),
                                       cwd=harness.REPO)
        deadline = time.monotonic() + 600
        while True:
            if not self.service.alive():
                raise SystemExit(f"{kind} server died: see {log}")
            try:
                urllib.request.urlopen(self.url + "/health", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{kind} server did not start: see {log}")
                time.sleep(0.3)

    def rss_mb(self):
        return self.service.rss_mb()

    def stop(self):
        self.service.stop()


def load_run(server, clips, concurrency, requests):
    """``requests`` uploads by ``concurrency`` client threads -> requests/s, latencies, texts."""
    datas = [open(c, "rb").read() for c in clips]
    latencies, texts, errors = [], {}, []
    counter = iter(range(requests))
    lock = threading.Lock()

    def client():
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            started = time.perf_counter()
            try:
                text = upload(server.url, datas[index % len(datas)], server.model)
            except Exception as e:  # noqa: BLE001 (counted and reported)
                errors.append(repr(e))
                continue
            with lock:
                latencies.append(time.perf_counter() - started)
                texts[index % len(datas)] = text

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
            "requests_per_s": len(latencies) / wall, "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "p95_ms": 1000 * float(np.percentile(latencies, 95)), "server_rss_mb": server.rss_mb(),
            "audio_x_real_time": len(latencies) * CLIP_S / wall}, texts


def stream_run(url, clips, streams, piece_ms=60):
    """N concurrent online streams, each sending one clip at real time -> final latencies (ms)."""
    from websockets.sync.client import connect

    finals, errors, late = [], [], []

    def client(index):
        import soundfile

        audio, _ = soundfile.read(clips[index % len(clips)], dtype="int16")
        pcm = audio.astype("<i2").tobytes()
        step = int(16000 * piece_ms / 1000) * 2
        try:
            with connect(url.replace("http", "ws"), open_timeout=60, max_size=None) as ws:
                ws.send(json.dumps({"mode": "online", "chunk_size": [5, 10, 5], "wav_name": f"s{index}",
                                    "is_speaking": True, "audio_fs": 16000}))
                start = time.perf_counter()
                for n, offset in enumerate(range(0, len(pcm), step)):
                    delay = start + n * piece_ms / 1000 - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    else:
                        late.append(-delay)
                    ws.send(pcm[offset:offset + step])
                ended = time.perf_counter()
                ws.send(json.dumps({"is_speaking": False}))
                while True:
                    message = json.loads(ws.recv(timeout=600))
                    if message["is_final"]:
                        finals.append(1000 * (time.perf_counter() - ended))
                        return
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"streams": streams, "errors": len(errors), "final_p50_ms": float(np.percentile(finals, 50)) if finals else None,
            "final_p95_ms": float(np.percentile(finals, 95)) if finals else None,
            "sends_late_over_100ms": sum(1 for d in late if d > 0.1)}


def rss_run(server, clips, total, samples=20):
    rows, done = [], 0
    step = max(1, total // samples)
    while done < total:
        n = min(step, total - done)
        load_run(server, clips, 2, n)
        done += n
        rows.append({"requests": done, "rss_mb": server.rss_mb()})
    warm = rows[max(0, len(rows) // 10 - 1)]["rss_mb"]
    return {"rows": rows, "after_10pct_mb": warm, "end_mb": rows[-1]["rss_mb"], "growth_mb": rows[-1]["rss_mb"] - warm}


CLIP_S = 5.0


def main(argv=None) -> int:
    global CLIP_S
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a model dir both servers load (FunASR layout)")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--online_model_dir", default=None, help="a streaming model dir (streams measured)")
    parser.add_argument("--data_dir", required=True, help="a data dir whose audio is cut into clips")
    parser.add_argument("--clip_s", type=float, default=5.0)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=100, help="uploads per row")
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--rss_requests", type=int, default=0, help="uploads of the RSS run (0: none)")
    parser.add_argument("--funasr", action="store_true", help="also FunASR's own app on the same model dir")
    parser.add_argument("--out", default="bench/results/server.json")
    args = parser.parse_args(argv)
    CLIP_S = args.clip_s
    report = {"environment": harness.environment(int(os.environ.get("OMP_NUM_THREADS", "2"))), "args": vars(args),
              "http": [], "streams": [], "rss": None}
    with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
        clips = make_clips(args.data_dir, args.clip_s, args.clips, tmp)
        report["clips"] = len(clips)
        kinds = ["ours"] + (["funasr"] if args.funasr else [])
        texts = {}
        for kind in kinds:
            server = Server(kind, args.model_dir, args.checkpoint, args.online_model_dir if kind == "ours" else None,
                            os.path.join(tmp, f"{kind}.log"))
            try:
                load_run(server, clips, 1, min(5, len(clips)))  # warm-up
                for concurrency in args.concurrency:
                    row, texts[kind] = load_run(server, clips, concurrency, args.requests)
                    row["server"] = kind
                    report["http"].append(row)
                    print(f"  {kind} c={concurrency}: {row['requests_per_s']:.2f} req/s", file=sys.stderr)
                if kind == "ours" and args.online_model_dir:
                    for n in args.streams:
                        report["streams"].append(stream_run(server.url, clips, n))
                if kind == "ours" and args.rss_requests:
                    report["rss"] = rss_run(server, clips, args.rss_requests)
            finally:
                server.stop()
        if "funasr" in texts:
            # FunASR's app returns a Chinese model's characters separated by spaces; ours joins them
            same = sum("".join((texts["funasr"].get(i) or "").split()) == "".join(t.split())
                       for i, t in texts["ours"].items())
            report["same_text_as_funasr"] = f"{same}/{len(texts['ours'])}"
    print(harness.markdown_table([("server", "server"), ("clients", "concurrency"), ("requests", "requests"),
                                  ("errors", "errors"), ("req/s", "requests_per_s", ".2f"),
                                  ("x real time", "audio_x_real_time", ".1f"), ("p50 ms", "p50_ms", ".0f"),
                                  ("p95 ms", "p95_ms", ".0f"), ("server RSS MB", "server_rss_mb", ".0f")],
                                 report["http"]))
    if report["streams"]:
        print(harness.markdown_table([("streams", "streams"), ("errors", "errors"),
                                      ("final p50 ms", "final_p50_ms", ".0f"), ("final p95 ms", "final_p95_ms", ".0f"),
                                      ("client sends >100 ms late", "sends_late_over_100ms")], report["streams"]))
    if report["rss"]:
        rss = report["rss"]
        print(f"server RSS over {args.rss_requests} requests: {rss['after_10pct_mb']:.0f} MB after 10%, "
              f"{rss['end_mb']:.0f} MB at the end (growth {rss['growth_mb']:+.1f} MB)")
    if "same_text_as_funasr" in report:
        print(f"same text as FunASR's app: {report['same_text_as_funasr']} clips")
    harness.write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
