#!/usr/bin/env python
"""NAR vs AR decoding speed: Paraformer against the Conformer AED, same input, same settings.

For each size (``demo``: conf/demo.yaml vs conf/demo_aed.yaml; ``large``: conf/paraformer_sanm.yaml,
paraformer-large, vs a Conformer AED of about its size) the models are built with random weights
and decode the same random model input (LFR 7/6 frames, the features both families read in the
recipe) of utterances whose durations are drawn from ``--min_s``..``--max_s``, in these modes:

  paraformer greedy | paraformer beam+LM (beam 10, CTC 0.3, LM 0.2) | paraformer ctc_greedy
  aed greedy | aed beam10+CTC | aed beam10+CTC+LM | aed ctc_greedy

at batch 1 and batched (``--batch_bins`` padded frames, longest first as decode.inference cuts
batches), on 1 and 2 threads. Timed: the model's work for a batch (encoder, predictor/decoder,
search; the same calls decode.inference.Speech2Text makes), not reading audio or fbank.

Random weights decode nonsense of arbitrary length, so both are held to a realistic output
length of ``--chars_per_s`` tokens per second (AISHELL-1 test: ~2.9): the Paraformer's CIF
weights are set so that it fires at that rate, and the AED's ``</s>`` is made improbable and
forced after that many tokens (aed_beam_search/attention_greedy max_lengths). Trained models
are measured by the recipe itself: stage 6 writes each decode's ``1best_recog/rtf``.

Prints a table, the NAR/AR ratios (AED time / Paraformer time at equal settings), and writes
JSON. Quick setting (what CI-sized machines can afford):
  python bench/benchmark_nar_ar.py --sizes demo --num_utts 4 --threads 1 --out /tmp/nar_ar.json
Full run (docs/aed.md):
  python bench/benchmark_nar_ar.py --sizes demo large --num_utts 40 --threads 1 2 --out nar_ar.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Dict, List

import torch

import harness

from funasr_lite.decode.aed_search import aed_beam_search, ctc_greedy  # noqa: E402
from funasr_lite.decode.beam_search import beam_search_batch  # noqa: E402
from funasr_lite.models import build_model  # noqa: E402
from funasr_lite.models.lm import build_lm  # noqa: E402
from funasr_lite.utils.config import load_yaml, validate_config  # noqa: E402

CONF = os.path.join(harness.REPO, "egs", "aishell1", "conf")
FRAME_S = 0.06  # LFR 7/6 model-input frame
INPUT_DIM = 560  # 80 mel bins x LFR 7: every configuration here reads these frames
# A Conformer AED of paraformer-large's size on the same LFR input (see docs/aed.md).
LARGE_AED_EDITS = {
    "encoder_conf": {"output_size": 512, "attention_heads": 8, "linear_units": 2048,
                     "input_layer": "linear", "cnn_module_kernel": 15, "num_blocks": 25},
    "decoder_conf": {"attention_heads": 8, "linear_units": 2048, "num_blocks": 12},
}
SIZES = {
    # size: (paraformer config, aed config, aed edits, vocabulary)
    "demo": ("demo.yaml", "demo_aed.yaml", {}, 2800),
    "large": ("paraformer_sanm.yaml", "demo_aed.yaml", LARGE_AED_EDITS, 8404),
}
MODES = {
    "paraformer": ("greedy", "beam+LM", "ctc_greedy"),
    "aed": ("greedy", "beam10+CTC", "beam10+CTC+LM", "ctc_greedy"),
}
BEAM, CTC_WEIGHT, LM_WEIGHT = 10, 0.3, 0.2


def build(config_name: str, edits: Dict, vocab: int) -> torch.nn.Module:
    config = validate_config(load_yaml(os.path.join(CONF, config_name)), source=config_name)
    for key, value in edits.items():
        config[key] = {**config[key], **value}
    config["input_size"] = config["frontend_conf"]["n_mels"] * config["frontend_conf"]["lfr_m"]
    config["vocab_size"] = vocab
    config.pop("specaug", None)
    config["model_conf"] = {**config.get("model_conf", {}), "ctc_weight": 0.3}  # both with a CTC head
    return build_model(config).eval()


def hold_to_rate(model, chars_per_s: float) -> None:
    """Random weights, realistic output length (see the module docstring)."""
    with torch.no_grad():
        if hasattr(model, "predictor"):
            rate = chars_per_s * FRAME_S  # tokens per encoder frame (no subsampling on LFR input)
            model.predictor.cif_output.weight.zero_()
            model.predictor.cif_output.bias.fill_(math.log(rate / (1 - rate)))
        else:
            model.decoder.output_layer.bias[model.eos] = -30.0


def utterances(num: int, min_s: float, max_s: float, dim: int, seed: int) -> List[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    durations = torch.empty(num).uniform_(min_s, max_s, generator=generator)
    return [torch.randn(max(1, int(d / FRAME_S)), dim, generator=generator) for d in durations.tolist()]


def batches(feats: List[torch.Tensor], batched: bool, batch_bins: int) -> List[List[torch.Tensor]]:
    if not batched:
        return [[f] for f in feats]
    ordered = sorted(feats, key=lambda f: -f.size(0))
    out, current = [], []
    for f in ordered:
        if current and (len(current) + 1) * current[0].size(0) > batch_bins:
            out.append(current)
            current = []
        current.append(f)
    return out + ([current] if current else [])


@torch.no_grad()
def decode(model, family: str, mode: str, feats: List[torch.Tensor], lm, chars_per_s: float) -> int:
    """One padded batch through the mode's calls; returns the tokens produced."""
    device = next(model.parameters()).device
    lengths = torch.tensor([f.size(0) for f in feats], device=device)
    x = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True).to(device)
    if mode == "ctc_greedy":
        encoder_out, encoder_lens = model.encode(x, lengths)
        return sum(len(o["token_ids"]) for o in ctc_greedy(model.ctc.log_softmax(encoder_out), encoder_lens))
    if family == "paraformer":
        if mode == "greedy":
            return sum(len(o["token_ids"]) for o in model.decode_greedy(x, lengths))
        encoder_out, encoder_lens = model.encode(x, lengths)  # as decode.inference.Speech2Text._search
        embeds, token_num, _, _ = model.calc_predictor(encoder_out, encoder_lens)
        token_lengths = token_num.round().long()
        am_logp = model.decoder_log_probs(encoder_out, encoder_lens, embeds, token_lengths)
        hyps = beam_search_batch(am_logp, token_lengths, model.ctc.log_softmax(encoder_out), encoder_lens, lm=lm,
                                 beam_size=BEAM, ctc_weight=CTC_WEIGHT, lm_weight=LM_WEIGHT)
        return sum(len(h[0].token_ids) for h in hyps)
    encoder_out, encoder_lens = model.encode(x, lengths)
    max_lengths = torch.clamp((lengths.float() * FRAME_S * chars_per_s).round().long(), min=1)
    max_lengths = torch.minimum(max_lengths, encoder_lens - 1)
    if mode == "greedy":
        return sum(len(o["token_ids"]) for o in model.attention_greedy(encoder_out, encoder_lens, max_lengths))
    hyps = aed_beam_search(model, encoder_out, encoder_lens, lm=lm if mode.endswith("LM") else None,
                           beam_size=BEAM, ctc_weight=CTC_WEIGHT, lm_weight=LM_WEIGHT if mode.endswith("LM") else 0.0,
                           max_lengths=max_lengths)
    return sum(len(h[0].token_ids) for h in hyps)


def measure(model, family, mode, feats, lm, args, threads, batched) -> Dict:
    """--repeats timed passes over all utterances after a one-utterance warm-up; medians."""
    torch.set_num_threads(threads)
    groups = batches(feats, batched, args.batch_bins)
    decode(model, family, mode, groups[0][:1], lm, args.chars_per_s)  # warm-up
    synchronize = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    synchronize()

    def one_pass():
        tokens = sum(decode(model, family, mode, group, lm, args.chars_per_s) for group in groups)
        synchronize()
        return tokens

    all_seconds, tokens = harness.time_repeats(one_pass, args.repeats)
    spread = harness.stats(all_seconds)
    seconds = spread["median"]
    audio_s = sum(f.size(0) for f in feats) * FRAME_S
    return {"seconds": seconds, "seconds_min": spread["min"], "seconds_max": spread["max"], "audio_s": audio_s,
            "rtf": seconds / audio_s, "utt_per_s": len(feats) / seconds, "tokens_per_audio_s": tokens / audio_s,
            "batches": len(groups)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["demo"], choices=sorted(SIZES))
    parser.add_argument("--num_utts", type=int, default=20)
    parser.add_argument("--min_s", type=float, default=3.0)
    parser.add_argument("--max_s", type=float, default=8.0)
    parser.add_argument("--chars_per_s", type=float, default=2.9)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--batch_bins", type=int, default=20000, help="padded frames per batch (decode default)")
    parser.add_argument("--modes", nargs="+", default=None, help="e.g. greedy beam+LM (default: all)")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes per row (the median is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (threads then set CPU-side threads)")
    parser.add_argument("--out", default="nar_ar_benchmark.json")
    args = parser.parse_args(argv)

    rows = []
    for size in args.sizes:
        nar_config, ar_config, ar_edits, vocab = SIZES[size]
        torch.manual_seed(args.seed)
        models = {"paraformer": build(nar_config, {}, vocab), "aed": build(ar_config, ar_edits, vocab)}
        for model in models.values():
            hold_to_rate(model, args.chars_per_s)
            model.to(args.device)
        lm_config = load_yaml(os.path.join(CONF, "lm.yaml"))
        lm = build_lm({"lm": lm_config.get("lm", "transformer"), "lm_conf": lm_config.get("lm_conf"),
                       "vocab_size": vocab}).eval().to(args.device)
        params = {family: sum(p.numel() for p in m.parameters()) for family, m in models.items()}
        feats = utterances(args.num_utts, args.min_s, args.max_s, INPUT_DIM, args.seed)
        print(f"# {size}: paraformer {params['paraformer']:,} / aed {params['aed']:,} parameters, "
              f"{len(feats)} utterances, {sum(f.size(0) for f in feats) * FRAME_S:.1f} s", flush=True)
        for family, model in models.items():
            for mode in MODES[family]:
                if args.modes and mode not in args.modes:
                    continue
                for threads in args.threads:
                    for batched in (False, True):
                        result = measure(model, family, mode, feats, lm, args, threads, batched)
                        row = {"size": size, "model": family, "mode": mode, "threads": threads,
                               "batch": "batched" if batched else "1", "parameters": params[family], **result}
                        rows.append(row)
                        print(f"{size:6s} {family:10s} {mode:14s} threads={threads} batch={row['batch']:7s} "
                              f"RTF {row['rtf']:.4f}  {row['utt_per_s']:7.2f} utt/s  "
                              f"{row['tokens_per_audio_s']:.2f} tok/s", flush=True)

    ratios = []
    pairs = [("greedy", "greedy"), ("beam+LM", "beam10+CTC+LM"), ("greedy", "beam10+CTC+LM")]
    index = {(r["size"], r["model"], r["mode"], r["threads"], r["batch"]): r for r in rows}
    print("\nNAR/AR speed ratio (AED time / Paraformer time, >1: Paraformer faster)")
    for size in args.sizes:
        for threads in args.threads:
            for batch in ("1", "batched"):
                for nar_mode, ar_mode in pairs:
                    nar = index.get((size, "paraformer", nar_mode, threads, batch))
                    ar = index.get((size, "aed", ar_mode, threads, batch))
                    if nar and ar:
                        ratio = ar["seconds"] / nar["seconds"]
                        ratios.append({"size": size, "threads": threads, "batch": batch, "paraformer": nar_mode,
                                       "aed": ar_mode, "ratio": ratio})
                        print(f"  {size:6s} threads={threads} batch={batch:7s} paraformer {nar_mode:8s} vs aed "
                              f"{ar_mode:14s}: {ratio:6.2f}x")
    print()
    print(harness.markdown_table(
        [("size", "size"), ("model", "model"), ("mode", "mode"), ("thr", "threads"), ("batch", "batch"),
         ("RTF", "rtf", ".4f"), ("utt/s", "utt_per_s", ".2f"), ("tokens/s", "tokens_per_audio_s", ".2f")], rows))
    report = {"environment": harness.environment(args.threads), "rows": rows, "ratios": ratios, "args": vars(args),
              "device_name": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu",
              "median_ratio": harness.stats(r["ratio"] for r in ratios)["median"] if ratios else None}
    harness.write_report(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
