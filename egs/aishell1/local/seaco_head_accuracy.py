#!/usr/bin/env python3
"""What a trained SeACo bias head predicts at hotword positions (issue #22; docs/hotwords.md).

    python local/seaco_head_accuracy.py --exp_dir exp/demo_seaco --checkpoint model.avg1.pt \
        --data_dirs data/train data/dev data/test_hotword --max_utts 400

Batches of 8 utterances of each data dir get hotwords sampled from their transcripts exactly as in
training (funasr_lite.data.hotword_sampling, seeded), and the bias head runs teacher-forced as in
training. Per data dir: hotword positions, the share where the head predicts the hotword token
(``acc_hotword``), the share where it says NO_BIAS instead, the share of NO_BIAS positions it gets
right (``acc_no_bias``), and the share of hotword positions the plain decoder already gets right.
What the list adds: of the hotword positions the plain decoder gets wrong, the share where the head
is right (``head_right_where_decoder_wrong``: only the list can tell it those); and of the positions
where the head names a token, the share where that token is the plain decoder's own argmax
(``head_is_decoder``: a head that copies the decoder's state, not the list, scores high here).
"""

import argparse
import json
import random

import torch

from funasr_lite.api import SpeechRecognizer
from funasr_lite.data.datadir import read_kv
from funasr_lite.data.hotword_sampling import sample_hotword_batch
from funasr_lite.inference.speech2text import items_from_data_dir


def measure(asr, data_dir, max_utts, seed, batch_size=8):
    model, speech2text, tokenizer = asr.speech2text.model, asr.speech2text, asr.loaded.tokenizer
    refs = read_kv(f"{data_dir}/text")
    items = [item for item in items_from_data_dir(data_dir) if item.key in refs][:max_utts]
    rng = random.Random(seed)
    counts = dict(hotword_positions=0, head_right=0, head_no_bias=0, no_bias_positions=0, no_bias_right=0,
                  decoder_right=0, decoder_wrong=0, head_right_where_decoder_wrong=0, head_names_token=0,
                  head_is_decoder=0)
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        prepared = [speech2text.prepare(i, item) for i, item in enumerate(batch)]
        feats = torch.nn.utils.rnn.pad_sequence([p.model_input for p in prepared], batch_first=True)
        feat_lengths = torch.tensor([p.num_frames for p in prepared])
        ids = [torch.tensor(tokenizer.encode(refs[item.key])) for item in batch]
        text = torch.nn.utils.rnn.pad_sequence(ids, batch_first=True)
        text_lengths = torch.tensor([len(x) for x in ids])
        hotwords = sample_hotword_batch(text, text_lengths, rng, model.sos, model.NO_BIAS)
        with torch.no_grad():
            encoder_out, encoder_lengths = model.encode(feats, feat_lengths)
            mask = torch.arange(encoder_out.size(1))[None] < encoder_lengths[:, None]
            target_lengths = text_lengths + 1
            embeds = model.predictor(encoder_out, mask, target_lengths=target_lengths)[0]
            hidden = model.decoder.forward_hidden(encoder_out, encoder_lengths, embeds, target_lengths)
            decoded = model.decoder.output_layer(hidden).argmax(-1)[:, :-1]
            words = model.hotword_embeddings(hotwords["hotword_pad"], hotwords["hotword_lengths"])
            words = words.unsqueeze(0).expand(len(batch), -1, -1)
            attended = model._attend(words, embeds, target_lengths) + model._attend(words, hidden, target_lengths)
            head = model.hotword_output_layer(attended[:, :-1]).argmax(-1)
        labels = hotwords["seaco_label_pad"]
        hot = (labels >= 0) & (labels != model.NO_BIAS)
        cold = labels == model.NO_BIAS
        counts["hotword_positions"] += int(hot.sum())
        counts["head_right"] += int((head == labels)[hot].sum())
        counts["head_no_bias"] += int((head == model.NO_BIAS)[hot].sum())
        counts["no_bias_positions"] += int(cold.sum())
        counts["no_bias_right"] += int((head == model.NO_BIAS)[cold].sum())
        counts["decoder_right"] += int((decoded == labels)[hot].sum())
        wrong = hot & (decoded != labels)
        counts["decoder_wrong"] += int(wrong.sum())
        counts["head_right_where_decoder_wrong"] += int((head == labels)[wrong].sum())
        names = (labels >= 0) & (head != model.NO_BIAS)
        counts["head_names_token"] += int(names.sum())
        counts["head_is_decoder"] += int((head == decoded)[names].sum())
    positions = max(counts["hotword_positions"], 1)
    return {"data_dir": data_dir, "utterances": len(items), **counts,
            "acc_hotword": counts["head_right"] / positions, "no_bias_at_hotwords": counts["head_no_bias"] / positions,
            "acc_no_bias": counts["no_bias_right"] / max(counts["no_bias_positions"], 1),
            "decoder_acc_at_hotwords": counts["decoder_right"] / positions,
            "head_right_where_decoder_wrong": counts["head_right_where_decoder_wrong"] / max(counts["decoder_wrong"], 1),
            "head_is_decoder": counts["head_is_decoder"] / max(counts["head_names_token"], 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp_dir", required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--data_dirs", nargs="+", required=True)
    parser.add_argument("--max_utts", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    asr = SpeechRecognizer.from_model_dir(args.exp_dir, checkpoint=args.checkpoint)
    asr.speech2text.model.eval()
    print("| data | utts | hotword positions | head right | head says NO_BIAS | NO_BIAS right | decoder right "
          "| head right where decoder wrong | head's token = decoder's |")
    print("|---|---|---|---|---|---|---|---|---|")
    for data_dir in args.data_dirs:
        r = measure(asr, data_dir, args.max_utts, args.seed)
        print(f"| {data_dir} | {r['utterances']} | {r['hotword_positions']} | {100 * r['acc_hotword']:.1f}% | "
              f"{100 * r['no_bias_at_hotwords']:.1f}% | {100 * r['acc_no_bias']:.1f}% | "
              f"{100 * r['decoder_acc_at_hotwords']:.1f}% | {100 * r['head_right_where_decoder_wrong']:.1f}% | "
              f"{100 * r['head_is_decoder']:.1f}% |")
        print(json.dumps(r))


if __name__ == "__main__":
    main()
