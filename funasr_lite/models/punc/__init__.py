"""CT-Transformer punctuation (FunASR's ``CTTransformer``): model, windowed inference, model dirs."""

from funasr_lite.models.punc.model import DEFAULT_PUNC_LIST, CTTransformer
from funasr_lite.models.punc.punctuator import PuncModelDirError, Punctuator, build_ct_transformer, read_punc_config
from funasr_lite.models.punc.windowed import split_to_mini_sentences, split_words, windowed_punctuation

__all__ = [
    "CTTransformer",
    "DEFAULT_PUNC_LIST",
    "PuncModelDirError",
    "Punctuator",
    "build_ct_transformer",
    "read_punc_config",
    "split_to_mini_sentences",
    "split_words",
    "windowed_punctuation",
]
