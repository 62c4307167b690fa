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
