"""Punctuation from a FunASR punctuation model dir: ``Punctuator.from_model_dir(DIR)(text)``.

A FunASR CT-Transformer model dir (e.g. the released
``punc_ct-transformer_zh-cn-common-vocab272727-pytorch``, or one written by
``funasr_lite.bin.train_punc``) holds::

    config.yaml   model: CTTransformer, model_conf (punc_list, embed_unit, att_unit,
                  sentence_end_id, ...), encoder: SANMEncoder + encoder_conf,
                  tokenizer: CharTokenizer + tokenizer_conf (unk_symbol)
    tokens.json   the token list, a JSON list (``tokens.txt``, one per line, is read when there
                  is no tokens.json; FunASR prefers tokens.json too)
    model.pt      the state dict (``embed.*``, ``encoder.*``, ``decoder.*``), loaded strictly

Tokens are looked up exactly as FunASR's tokenizer does (unknown -> ``unk_symbol``). A dir with
a ``jieba_usr_dict`` (word-level models such as the cn-en "large" one) is refused: that model
segments words with jieba, which this toolkit does not reproduce.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import torch
import yaml

from funasr_lite.data.tokenizer import TokenListError, read_token_list
from funasr_lite.models.load import load_model_weights
from funasr_lite.models.punc.model import CTTransformer, NO_PUNC
from funasr_lite.models.punc.windowed import DEFAULT_SPLIT_SIZE, split_words, windowed_punctuation

TOKEN_LIST_NAMES = ("tokens.json", "tokens.txt")  # in FunASR's order of preference


class PuncModelDirError(ValueError):
    """A punctuation model dir that cannot be used; the message names the file and the problem."""


def read_punc_config(model_dir: str) -> Dict:
    """``config.yaml`` of a punctuation model dir, checked to be a CT-Transformer."""
    config_path = os.path.join(model_dir, "config.yaml")
    if not os.path.isfile(config_path):
        raise PuncModelDirError(f"{model_dir}: no config.yaml (not a FunASR punctuation model dir)")
    with open(config_path, encoding="utf-8") as f:
        try:
            config = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise PuncModelDirError(f"{config_path}: not valid YAML: {e}") from None
    if not isinstance(config, dict) or config.get("model") != "CTTransformer":
        got = config.get("model") if isinstance(config, dict) else config
        raise PuncModelDirError(f"{config_path}: model is {got!r}, a punctuation model dir has 'CTTransformer'")
    return config


def build_ct_transformer(config: Dict, vocab_size: int, source: str = "config") -> CTTransformer:
    """The model a punctuation config describes (``model_conf``, ``encoder``, ``encoder_conf``)."""
    model_conf = dict(config.get("model_conf") or {})
    model_conf.pop("vocab_size", None)
    known = {"punc_list", "punc_weight", "embed_unit", "att_unit", "dropout_rate", "ignore_id", "sos", "eos",
             "sentence_end_id"}
    unknown = sorted(set(model_conf) - known)
    if unknown:
        raise PuncModelDirError(f"{source}: model_conf has keys this CT-Transformer does not know: {unknown}")
    try:
        return CTTransformer(vocab_size, encoder=config.get("encoder", "SANMEncoder"),
                             encoder_conf=config.get("encoder_conf"), **model_conf)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise PuncModelDirError(f"{source}: {e}") from None


class Punctuator:
    """Adds punctuation to unpunctuated text with FunASR's windowed CT-Transformer inference.

    ``p(text) -> str``: punctuated text (FunASR's ``AutoModel(model=DIR).generate(text)[0]["text"]``).
    ``p.punctuate_tokens(tokens) -> list[str]``: for each given token, the mark that follows it
    (``，`` ``。`` ``？`` ``、``) or ``""`` (labels ``_`` and ``<unk>``); the tokens are used as they
    are (no re-splitting), e.g. the characters of an ASR result.
    """

    def __init__(self, model: CTTransformer, token_list: Sequence[str], unk_symbol: str = "<unk>",
                 split_size: int = DEFAULT_SPLIT_SIZE, device: str = "cpu"):
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.token_list = list(token_list)
        self.token_to_id = {token: i for i, token in enumerate(self.token_list)}
        if unk_symbol not in self.token_to_id:
            raise ValueError(f"unk_symbol {unk_symbol!r} is not in the token list")
        self.unk_id = self.token_to_id[unk_symbol]
        self.split_size = int(split_size)
        self.punc_list = list(model.punc_list)

    @classmethod
    def from_model_dir(cls, model_dir, device: str = "cpu", split_size: Optional[int] = None) -> "Punctuator":
        """Read ``config.yaml``, ``tokens.json`` (or ``tokens.txt``) and ``model.pt`` of a FunASR
        CT-Transformer model dir. ``split_size``: mini-sentence length (default: the config's
        ``split_size``, else FunASR's 20)."""
        model_dir = os.fspath(model_dir)
        config = read_punc_config(model_dir)
        config_path = os.path.join(model_dir, "config.yaml")
        if os.path.exists(os.path.join(model_dir, "jieba_usr_dict")):
            raise PuncModelDirError(f"{model_dir}: has a jieba_usr_dict (a word-level model); only character-level "
                                    "CT-Transformer dirs are supported")
        tokenizer = config.get("tokenizer", "CharTokenizer")
        if tokenizer != "CharTokenizer":
            raise PuncModelDirError(f"{config_path}: tokenizer {tokenizer!r} is not supported (only CharTokenizer)")
        token_path = next((os.path.join(model_dir, name) for name in TOKEN_LIST_NAMES
                           if os.path.isfile(os.path.join(model_dir, name))), None)
        if token_path is None:
            raise PuncModelDirError(f"{model_dir}: no token list ({' or '.join(TOKEN_LIST_NAMES)})")
        try:
            tokens = read_token_list(token_path)
        except (TokenListError, OSError, ValueError) as e:
            raise PuncModelDirError(f"{token_path}: {e}") from None
        unk_symbol = (config.get("tokenizer_conf") or {}).get("unk_symbol", "<unk>")
        if unk_symbol not in tokens:
            raise PuncModelDirError(f"{token_path}: the unk_symbol {unk_symbol!r} is not in the token list")
        model = build_ct_transformer(config, len(tokens), source=config_path)
        load_model_weights(model, os.path.join(model_dir, "model.pt"), strict=True)
        return cls(model, tokens, unk_symbol=unk_symbol, device=device,
                   split_size=split_size or config.get("split_size", DEFAULT_SPLIT_SIZE))

    def token_ids(self, tokens: Sequence[str]) -> List[int]:
        """Ids of the tokens; unknown ones map to the unk id (FunASR's ``tokens2ids``)."""
        return [self.token_to_id.get(token, self.unk_id) for token in tokens]

    @torch.no_grad()
    def _predict(self, window_ids: List[int]) -> List[int]:
        ids = torch.tensor([window_ids], dtype=torch.long, device=self.device)
        logits = self.model(ids, torch.tensor([len(window_ids)], device=self.device))
        return logits[0].argmax(dim=-1).tolist()

    def label_tokens(self, tokens: Sequence[str]) -> List[int]:
        """Label ids (indices of ``punc_list``), one per token, from FunASR's windowing."""
        labels, _ = windowed_punctuation(tokens, self.token_ids(tokens), self._predict, self.punc_list,
                                         self.model.sentence_end_id, self.split_size)
        return labels

    def punctuate_tokens(self, tokens: Sequence[str]) -> List[str]:
        """The mark after each token: ``，`` ``。`` ``？`` ``、`` or ``""``."""
        tokens = [str(token) for token in tokens]
        return ["" if self.punc_list[label] in (NO_PUNC, "<unk>") else self.punc_list[label]
                for label in self.label_tokens(tokens)]

    def __call__(self, text: str) -> str:
        """Punctuated text; empty or blank text gives ""."""
        tokens = split_words(text)
        _, rendered = windowed_punctuation(tokens, self.token_ids(tokens), self._predict, self.punc_list,
                                           self.model.sentence_end_id, self.split_size)
        return rendered
