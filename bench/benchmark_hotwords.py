#!/usr/bin/env python3
"""What hotwords cost at decoding: a SeACo (or Contextual) model decodes the same utterances without
hotwords and with lists of each size, side by side in one worker (the order rotating between
repeats); medians of the wall time, and each list's time over the no-hotword time.

    python bench/benchmark_hotwords.py --model_dir egs/aishell1/exp/demo_seaco --checkpoint model.avg1.pt \
        --data_dir egs/aishell1/data/test_hotword --lists 200=egs/aishell1/data/test_hotword/hotwords_200.txt \
        1000=egs/aishell1/data/test_hotword/hotwords_1000.txt --repeats 5 --threads 1 --out bench_out/hotwords.json

Decoding is greedy through ``Speech2Text`` (features from the data dir's ``wav.scp``, prepared once
and shared by every variant: the time is the model's). The hotword embeddings are made once per
list, as a server would keep them; their cost is reported apart (``embed_s``).

``--released_layout``: instead of the model dir's weights, a SeACo model of the released
seaco_paraformer-large's layout (FunASR's ``seaco_paraformer/template.yaml``: a 50-layer SAN-M
encoder of width 512, a 16-layer decoder, CifPredictorV3, a 4-block seaco decoder with 6
source-attention layers, inner_dim 512) with random weights (seed 1; the CIF output bias set so it
fires about one token per 3 frames, as a trained model does), built in a temporary dir with the
model dir's tokens, am.mvn, seg_dict and frontend: the share of decoding time that hotwords cost
on the model users run, whose encoder is far larger than the demo's.

``--boost SCORE``: hotword boosting in beam search instead (any model, ``hotword_score``;
docs/hotwords.md): every variant, "none" included, decodes with beam search (``--beam_size``,
``--ctc_weight``), the lists with ``hotword_score=SCORE`` and ``hotword_topk=--boost_topk``:

    python bench/benchmark_hotwords.py --model_dir egs/aishell1/exp/demo --checkpoint model.avg3.pt \
        --data_dir egs/aishell1/data/test_hotword --lists 200=egs/aishell1/data/test_hotword/hotwords_200.txt \
        --boost 3.0 --boost_topk 50 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

import harness

LARGE_CONFIG = os.path.join(harness.REPO, "egs", "aishell1", "conf", "paraformer_sanm.yaml")
# What FunASR's seaco_paraformer/template.yaml adds to paraformer-large's encoder and decoder
# (egs/aishell1/conf/paraformer_sanm.yaml): the BiCif predictor and the seaco decoder.
SEACO_PARTS = {
    "model": "seaco_paraformer",
    "seaco_decoder": "paraformer_decoder_sanm",
    "seaco_decoder_conf": dict(attention_heads=4, linear_units=1024, num_blocks=4, kernel_size=21, sanm_shfit=0,
                               use_output_layer=False, wo_input_layer=True),
    "predictor": "cif_predictor_v3",
    "predictor_conf": dict(idim=512, threshold=1.0, l_order=1, r_order=1, tail_threshold=0.45, smooth_factor2=0.25,
                           noise_threshold2=0.01, upsample_times=3, use_cif1_cnn=False, upsample_type="cnn_blstm"),
}


def released_layout_dir(model_dir: str, checkpoint, out_dir: str, large_config: str = LARGE_CONFIG) -> str:
    """A random-weight SeACo model dir of the released layout (``large_config``'s encoder and
    decoder + :data:`SEACO_PARTS`), with ``model_dir``'s tokens, am.mvn, seg_dict and frontend (see
    the module docstring)."""
    import torch
    import yaml

    from paraformer_pair import fire_about_every_third_frame

    from funasr_lite.inference.model_dir import load_model_dir
    from funasr_lite.models import build_model
    from funasr_lite.utils.config import load_yaml

    loaded = load_model_dir(model_dir, checkpoint)
    config = {key: value for key, value in loaded.config.items() if key not in ("specaug", "specaug_conf",
                                                                                   "freeze_param")}
    large = load_yaml(large_config)
    config.update({key: large[key] for key in ("encoder", "encoder_conf", "decoder", "decoder_conf")}, **SEACO_PARTS)
    config["model_conf"] = dict(config.get("model_conf") or {}, inner_dim=int(large["encoder_conf"]["output_size"]))
    torch.manual_seed(1)
    model = build_model(dict(config, input_size=loaded.input_size, vocab_size=len(loaded.token_list)))
    fire_about_every_third_frame(model)
    os.makedirs(out_dir, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(out_dir, "model.pt"))
    with open(os.path.join(out_dir, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    with open(os.path.join(out_dir, "tokens.txt"), "w", encoding="utf-8") as f:
        f.writelines(token + "\n" for token in loaded.token_list)
    shutil.copy(loaded.files.cmvn, os.path.join(out_dir, "am.mvn"))
    seg_dict = os.path.join(os.path.dirname(loaded.files.config), "seg_dict")
    if os.path.isfile(seg_dict):
        shutil.copy(seg_dict, os.path.join(out_dir, "seg_dict"))
    return out_dir


def measure(model_dir: str, checkpoint, data_dir: str, lists: dict, repeats: int, max_utts: int,
            boost: dict = None) -> dict:
    """``boost``: None (the model's bias branch, greedy), or {"score", "topk", "beam_size", "ctc_weight"}."""
    from funasr_lite.inference.model_dir import load_model_dir
    from funasr_lite.inference.speech2text import DecodeOptions, Speech2Text, items_from_data_dir

    loaded = load_model_dir(model_dir, checkpoint)
    search, with_list = {}, {}
    if boost:
        search = dict(decode_mode="beam", beam_size=boost["beam_size"], ctc_weight=boost["ctc_weight"])
        with_list = dict(hotword_score=boost["score"], hotword_topk=boost["topk"])
    decoders, embed_s = {"none": Speech2Text(loaded, DecodeOptions(**search))}, {}
    for name, path in lists.items():
        start = time.perf_counter()
        decoders[name] = Speech2Text(loaded, DecodeOptions(hotword=path, **search, **with_list))
        embed_s[name] = time.perf_counter() - start
    items = items_from_data_dir(data_dir)[:max_utts] if max_utts else items_from_data_dir(data_dir)
    prepared = [decoders["none"].prepare(i, item) for i, item in enumerate(items)]
    audio_s = sum(p.audio_s for p in prepared)

    def run(name, _repeat):
        start = time.perf_counter()
        batches = decoders[name]._batches(list(prepared))
        tokens = sum(len(r["token"]) for batch in batches for r in decoders[name].decode_batch(batch))
        return {"wall_s": time.perf_counter() - start, "tokens": tokens}

    runs = harness.side_by_side(list(decoders), repeats, run)
    return {"runs": runs, "embed_s": embed_s, "audio_s": audio_s, "utterances": len(prepared)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="a SeACo/Contextual model dir or exp dir")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--lists", nargs="+", required=True, help="NAME=hotword-file ...")
    parser.add_argument("--max_utts", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--released_layout", action="store_true",
                        help="random weights in the released seaco_paraformer-large layout (see above)")
    parser.add_argument("--boost", type=float, default=0.0,
                        help="> 0: hotword boosting in beam search with this hotword_score (any model)")
    parser.add_argument("--boost_topk", type=int, default=0, help="--boost: hotword_topk")
    parser.add_argument("--beam_size", type=int, default=10, help="--boost: beam size")
    parser.add_argument("--ctc_weight", type=float, default=0.3, help="--boost: CTC prefix score weight")
    parser.add_argument("--out", default="bench_out/hotwords.json")
    args = parser.parse_args(argv)
    boost = (dict(score=args.boost, topk=args.boost_topk, beam_size=args.beam_size, ctc_weight=args.ctc_weight)
             if args.boost > 0 else None)
    lists = dict(entry.split("=", 1) for entry in args.lists)
    model_dir, checkpoint, temp = args.model_dir, args.checkpoint, None
    if args.released_layout:
        temp = tempfile.TemporaryDirectory(prefix="seaco_large_")
        model_dir, checkpoint = released_layout_dir(args.model_dir, args.checkpoint, temp.name), None
    try:
        result = harness.run_in_worker(measure, args.threads, model_dir=model_dir, checkpoint=checkpoint,
                                       data_dir=args.data_dir, lists=lists, repeats=args.repeats,
                                       max_utts=args.max_utts, boost=boost)
    finally:
        if temp is not None:
            temp.cleanup()
    runs = result["runs"]
    base = runs["none"]
    rows = []
    for name, name_runs in runs.items():
        wall = harness.stats(r["wall_s"] for r in name_runs)
        ratio = harness.paired_ratios(name_runs, base, "wall_s")
        rows.append({"hotwords": name, "wall_s": wall["median"], "rtf": wall["median"] / result["audio_s"],
                     "ratio": ratio["median_per_repeat"], "embed_s": result["embed_s"].get(name, 0.0),
                     "tokens": name_runs[-1]["tokens"]})
    print(harness.markdown_table([("hotwords", "hotwords"), ("wall s (median)", "wall_s", ".3f"), ("RTF", "rtf", ".4f"),
                                  ("/ no hotwords", "ratio", ".3f"), ("embedding s", "embed_s", ".3f"),
                                  ("tokens", "tokens")], rows))
    harness.write_report(args.out, {"rows": rows, "runs": runs, "utterances": result["utterances"],
                                    "audio_s": result["audio_s"], "peak_rss_mb": result.get("peak_rss_mb"),
                                    "environment": harness.environment(args.threads), "args": vars(args)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
