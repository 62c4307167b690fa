"""Training hotwords: the spans FunASR's AudioDatasetHotword draws (bounds and rates), and its
collator's tensors from the same spans."""

import random

import pytest
import torch

from funasr.datasets.audio_datasets.datasets import AudioDatasetHotword

from funasr_lite.data.hotword_sampling import hotword_batch, sample_hotword_batch, sample_spans


def test_span_bounds_and_rates_are_funasrs():
    rng = random.Random(0)
    counts = {"none": 0, "one": 0, "two": 0}
    for _ in range(20000):
        length = rng.randint(1, 30)
        spans = sample_spans(length, rng)
        if spans == [-1]:
            counts["none"] += 1
            continue
        counts["one" if len(spans) == 2 else "two"] += 1
        for start, end in zip(spans[::2], spans[1::2]):
            assert 0 <= start <= end < length and 2 <= end - start + 1 <= 8
        if len(spans) == 4:
            assert length > 12 and spans[1] < spans[2]
    assert sample_spans(1, rng) == [-1]
    drawn = counts["one"] + counts["two"]
    assert 0.70 < drawn / 20000 < 0.76  # 0.75 of the utterances with 2+ tokens (1/30 have one)
    assert 0.03 < counts["two"] / drawn < 0.08  # 0.1 of those with more than 12 tokens


def funasr_collate(text, text_lengths, spans, seaco_id):
    collator = object.__new__(AudioDatasetHotword)
    collator.int_pad_value, collator.float_pad_value = -1, 0.0
    samples = [{"speech": torch.zeros(3, 2), "speech_lengths": torch.tensor([3], dtype=torch.int32),
                "text": text[b, : int(text_lengths[b])].to(torch.int64),
                "text_lengths": torch.tensor([int(text_lengths[b])], dtype=torch.int32),
                "hotword_indx": spans[b], "seaco_id": seaco_id} for b in range(len(spans))]
    return AudioDatasetHotword.collator(collator, samples)


@pytest.mark.parametrize("seaco_id", [7, None])
def test_collated_tensors_equal_funasrs(seaco_id):
    text = torch.tensor([[5, 9, 3, 12, 7, 20, 8, 8, 9, 11, 4, 4, 6, 5], [4, 4, 8, 29, 3] + [-1] * 9,
                         [6, 7] + [-1] * 12])
    text_lengths = torch.tensor([14, 5, 2])
    spans = [[1, 3, 7, 12], [-1], [0, 1]]
    expected = funasr_collate(text, text_lengths, spans, seaco_id or 0)
    ours = hotword_batch(text, text_lengths, spans, sos_id=1, seaco_id=seaco_id)
    assert torch.equal(ours["hotword_pad"], expected["hotword_pad"])
    assert torch.equal(ours["hotword_lengths"], expected["hotword_lengths"])
    if seaco_id is None:
        assert "seaco_label_pad" not in ours and "seaco_label_pad" not in expected
    else:
        assert torch.equal(ours["seaco_label_pad"], expected["seaco_label_pad"])
    assert ours["hotword_pad"][-1].tolist()[0] == 1  # <s> last


def test_sampling_is_reproducible_from_the_generator_state():
    text, lengths = torch.randint(3, 30, (4, 15)), torch.tensor([15, 9, 2, 12])
    first = sample_hotword_batch(text, lengths, random.Random(5), sos_id=1, seaco_id=0)
    again = sample_hotword_batch(text, lengths, random.Random(5), sos_id=1, seaco_id=0)
    assert all(torch.equal(first[k], again[k]) for k in first)
