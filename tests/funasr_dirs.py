"""FunASR-layout model dirs made from funasr's own model classes (random, seeded weights), for the
tests that compare our loading and decoding with funasr's: one copy of the build-and-save steps."""

import copy
import json
import os

import torch
import yaml

# config.yaml sections that are not constructor arguments of funasr's model classes.
_NOT_MODEL_ARGS = ("model", "model_conf", "frontend", "frontend_conf", "tokenizer", "tokenizer_conf", "train_conf",
                   "optim", "optim_conf", "scheduler", "scheduler_conf")


def build_funasr_model(model_cls, config: dict, vocab_size: int, seed: int = 0, alpha_bias=-0.9, input_size=560):
    """``model_cls(**config)`` as FunASR's AutoModel builds it (model_conf merged in), seeded, with
    the CIF output bias set so that it fires often (None: left as initialised); in eval mode."""
    kwargs = {k: copy.deepcopy(v) for k, v in config.items() if k not in _NOT_MODEL_ARGS}
    kwargs.update(copy.deepcopy(config["model_conf"]), input_size=input_size, vocab_size=vocab_size)
    torch.manual_seed(seed)
    model = model_cls(**kwargs)
    if alpha_bias is not None:
        with torch.no_grad():
            model.predictor.cif_output.bias.fill_(alpha_bias)
    return model.eval()


def save_funasr_dir(path: str, config: dict, model, tokens, write_cmvn, seg_dict: bool = False) -> str:
    """model.pt, config.yaml, tokens.json, am.mvn (``write_cmvn(path)``) and, with ``seg_dict``, an
    identity seg_dict of the non-special tokens (what a hotword model dir carries). Returns path."""
    os.makedirs(path, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(path, "model.pt"))
    with open(os.path.join(path, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True, sort_keys=False)
    with open(os.path.join(path, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(list(tokens), f, ensure_ascii=False)
    if seg_dict:
        with open(os.path.join(path, "seg_dict"), "w", encoding="utf-8") as f:
            f.writelines(f"{token} {token}\n" for token in tokens if not token.startswith("<"))
    write_cmvn(os.path.join(path, "am.mvn"))
    return path


# A CIF count or fire this close to its threshold could flip with the last bits of a CPU's float
# rounding (AVX-512 or not): parity inputs must stay farther off (docs: brief, "off decision thresholds").
THRESHOLD_MARGIN = 2e-5  # float32 accumulations differ by ~1e-6 between implementations and CPUs


def assert_off_cif_thresholds(loaded, items, margin: float = THRESHOLD_MARGIN) -> None:
    """For each input of ``items`` (our InputItem list), the CIF token count (sum of alphas + tail)
    and every timestamp fire (peaks against 1 - 1e-4) of ``loaded``'s model lie at least
    ``margin`` away from their thresholds, so an exact comparison holds on any CPU."""
    from funasr_lite.inference.speech2text import Speech2Text

    speech2text = Speech2Text(loaded)
    model = loaded.model
    for index, item in enumerate(items):
        prepared = speech2text.prepare(index, item)
        feats, lengths = prepared.model_input[None], torch.tensor([prepared.num_frames])
        with torch.no_grad():
            encoder_out, encoder_lengths = model.encode(feats, lengths)
            _, token_num, alphas, _ = model.calc_predictor(encoder_out, encoder_lengths)
        count = float(alphas.double().sum())
        assert abs(count - round(count)) > margin, f"{item.key}: CIF count {count} is on an integer"
        signals = model.decode_greedy(feats, lengths)[0]
        distance = float((signals["peaks"].double() - (1.0 - 1e-4)).abs().min())
        assert distance > margin, f"{item.key}: a timestamp fire is {distance:.2e} from the threshold"
