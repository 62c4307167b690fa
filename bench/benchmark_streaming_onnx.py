#!/usr/bin/env python3
"""Our streaming ONNX export read by the ONNX runtimes people deploy (issue #23): funasr-onnx's
online Paraformer and sherpa-onnx's OnlineRecognizer against our own stream, on a data dir.

    python bench/benchmark_streaming_onnx.py --model_dir egs/aishell1/exp/demo_streaming/model_dir \\
        --data_dir egs/aishell1/data/test --out bench/results/streaming_onnx.json

The model dir must hold the stage-8 online export (model.onnx, decoder.onnx, tokens.txt). Every
utterance goes through, at chunk [5, 10, 5] (600 ms steps):

* ours, look-back (4, 1) (the default) and (0, 0) (what the ONNX graphs carry), fed in
  ``--piece_ms`` pieces, the last one with ``is_final``;
* funasr-onnx: the same pieces, its ``param_dict`` cache and ``is_final``;
* sherpa-onnx: 100 ms pieces, then 0.66 s of silence and ``input_finished`` (upstream's examples;
  without the silence it drops the end), and again with the ``is_final`` option set as well (its
  last short chunk zero-padded in the log-mel domain, which reads as noise: it adds characters).

Per decoder: CER, on how many utterances its text equals each of our two streams, and on how many
it ends with the last character of our stream without look-back (the end kept). One worker,
1 thread. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import os
import sys

import harness


def measure(model_dir, data_dir, piece_ms, max_utts):
    import numpy as np
    import torch

    from funasr_lite.data.datadir import read_kv
    from funasr_lite.inference.model_dir import load_model_dir
    from funasr_lite.inference.speech2text import item_waveform, items_from_wav_scp
    from funasr_lite.inference.streaming import StreamingSession
    from funasr_lite.scoring.cer import compute_cer

    torch.set_num_threads(1)
    refs = read_kv(os.path.join(data_dir, "text"))
    items = [item for item in items_from_wav_scp(os.path.join(data_dir, "wav.scp")) if item.key in refs]
    items = items[:max_utts] if max_utts else items
    loaded = load_model_dir(model_dir)
    audios = {item.key: item_waveform(loaded.frontend, item) for item in items}
    piece = int(loaded.sample_rate * piece_ms / 1000)

    def ours(look_back):
        session = StreamingSession(loaded, chunk_size=(5, 10, 5), encoder_chunk_look_back=look_back[0],
                                   decoder_chunk_look_back=look_back[1])
        out = {}
        for key, audio in audios.items():
            session.reset()
            out[key] = "".join(session.feed(audio[s:s + piece], is_final=s + piece >= audio.size)
                               for s in range(0, max(audio.size, 1), piece))
        return out

    def funasr_onnx():
        from funasr_onnx.paraformer_online_bin import Paraformer

        runtime = Paraformer(model_dir, batch_size=1, chunk_size=[5, 10, 5], intra_op_num_threads=1)
        out = {}
        for key, audio in audios.items():
            cache, text = {}, ""
            for s in range(0, max(audio.size, 1), piece):
                result = runtime(audio[s:s + piece], param_dict={"cache": cache, "is_final": s + piece >= audio.size})
                text += "".join(r["preds"][0] for r in result) if result else ""
            out[key] = text.replace(" ", "")
        return out

    def sherpa_onnx(is_final):
        import sherpa_onnx as sherpa

        recognizer = sherpa.OnlineRecognizer.from_paraformer(
            tokens=os.path.join(model_dir, "tokens.txt"), encoder=os.path.join(model_dir, "model.onnx"),
            decoder=os.path.join(model_dir, "decoder.onnx"), num_threads=1)
        out = {}
        for key, audio in audios.items():
            stream = recognizer.create_stream()
            for s in range(0, audio.size, 1600):
                stream.accept_waveform(loaded.sample_rate, audio[s:s + 1600])
            stream.accept_waveform(loaded.sample_rate, np.zeros(int(0.66 * loaded.sample_rate), dtype=np.float32))
            stream.input_finished()
            if is_final:
                stream.set_option("is_final", "1")
            while recognizer.is_ready(stream):
                recognizer.decode_stream(stream)
            out[key] = recognizer.get_result(stream).replace(" ", "")
        return out

    hyps = {"ours (4,1)": ours((4, 1)), "ours (0,0)": ours((0, 0)), "funasr-onnx": funasr_onnx(),
            "sherpa-onnx": sherpa_onnx(False), "sherpa-onnx, is_final": sherpa_onnx(True)}
    rows = []
    for name, hyp in hyps.items():
        rows.append({"decoder": name, "cer": compute_cer({k: refs[k] for k in hyp}, hyp).cer_percent,
                     "same_as_ours_4_1": sum(hyp[k] == hyps["ours (4,1)"][k] for k in hyp),
                     "same_as_ours_0_0": sum(hyp[k] == hyps["ours (0,0)"][k] for k in hyp),
                     "ends_as_ours_0_0": sum(hyp[k][-1:] == hyps["ours (0,0)"][k][-1:] for k in hyp)})
    return {"utterances": len(audios), "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a streaming model dir with the stage-8 online export")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--piece_ms", type=float, default=600.0)
    parser.add_argument("--max_utts", type=int, default=0)
    parser.add_argument("--out", default="bench/results/streaming_onnx.json")
    args = parser.parse_args(argv)
    result = harness.run_in_worker(measure, 1, model_dir=os.path.abspath(args.model_dir),
                                   data_dir=os.path.abspath(args.data_dir), piece_ms=args.piece_ms,
                                   max_utts=args.max_utts)
    n = result["utterances"]
    print(harness.markdown_table([("decoder", "decoder"), ("CER %", "cer", ".2f"),
                                  (f"same text as ours (4,1), of {n}", "same_as_ours_4_1"),
                                  (f"same text as ours (0,0), of {n}", "same_as_ours_0_0"),
                                  (f"ends with our (0,0) last character, of {n}", "ends_as_ours_0_0")],
                                 result["rows"]))
    harness.write_report(args.out, {"environment": harness.environment(1), "args": vars(args), **result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
