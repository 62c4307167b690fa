"""funasr's own x-vector parts (the oracle for the speaker tests), random weights, and the embedding
the way FunASR's sv inference computes it.

funasr 1.4.16 ships the parts of FunASR's speaker model (``funasr/models/sond/encoder/
resnet34_encoder.py``, ``sond/pooling/statistic_pooling.py``, ``sond/sv_decoder.py``) but their
imports still name modules of FunASR 0.x that 1.x removed (``funasr.models.encoder.abs_encoder``,
``funasr.models.decoder.abs_decoder``, ``funasr.models.pooling.statistic_pooling``), and
``funasr/models/xvector/e2e_sv.py`` (ESPnetSVModel) imports a dozen more. :func:`funasr_parts`
stands in for the three missing modules (the abstract bases were plain ``torch.nn.Module``; the
pooling module is the one now under ``sond/``) and imports the parts unchanged; :class:`FunasrSV`
holds them under ESPnetSVModel's attribute names, so its state dict is the FunASR checkpoint's.
"""

import importlib
import sys
import types

import torch

# FunASR's released sv.yaml (github.com/modelscope/FunASR, egs/cnceleb/resnet34/sv.yaml at FunASR 0.8,
# the config of speech_xvector_sv-zh-cn-cnceleb-16k-spk3465-pytorch), token_list cut to what a test needs.
RELEASED_SV_CONFIG = {
    "input_size": None,
    "specaug": None,
    "normalize": None,
    "init": None,
    "model": "espnet",
    "model_conf": {},
    "encoder": "resnet34",
    "encoder_conf": {
        "use_head_conv": True, "batchnorm_momentum": 0.5, "use_head_maxpool": False, "num_nodes_pooling_layer": 256,
        "layers_in_block": [3, 4, 6, 3], "filters_in_block": [32, 64, 128, 256],
    },
    "pooling_type": "statistic",
    "decoder": "dense",
    "decoder_conf": {"num_nodes_resnet1": 256, "num_nodes_last_layer": 256, "batchnorm_momentum": 0.5},
    "frontend": "wav_frontend",
    "frontend_conf": {"fs": 16000, "window": "povey", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
                      "filter_length_min": -1, "filter_length_max": -1, "lfr_m": 1, "lfr_n": 1},
    "log_interval": 50,
}


def _stand_in(name: str, **attributes) -> None:
    parent = name.rsplit(".", 1)[0]
    if parent not in sys.modules:
        sys.modules[parent] = types.ModuleType(parent)
    if name not in sys.modules:
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        sys.modules[name] = module


def funasr_parts():
    """(ResNet34, StatisticPooling, DenseDecoder) classes of the installed funasr."""
    importlib.import_module("funasr.models.sond")  # the real packages first: stand-ins only fill holes
    _stand_in("funasr.models.encoder.abs_encoder", AbsEncoder=torch.nn.Module)
    _stand_in("funasr.models.decoder.abs_decoder", AbsDecoder=torch.nn.Module)
    if "funasr.models.pooling.statistic_pooling" not in sys.modules:
        _stand_in("funasr.models.pooling")
        sys.modules["funasr.models.pooling.statistic_pooling"] = importlib.import_module(
            "funasr.models.sond.pooling.statistic_pooling")
    from funasr.models.sond.encoder.resnet34_encoder import ResNet34
    from funasr.models.sond.pooling.statistic_pooling import StatisticPooling
    from funasr.models.sond.sv_decoder import DenseDecoder

    return ResNet34, StatisticPooling, DenseDecoder


class FunasrSV(torch.nn.Module):
    """ESPnetSVModel's modules under its attribute names (frontend etc. are None in a model dir's
    model: the data loader computes fbank), built as FunASR 0.x ``SVTask.build_model`` did."""

    def __init__(self, config: dict, vocab_size: int):
        super().__init__()
        resnet34, statistic_pooling, dense_decoder = funasr_parts()
        frontend_conf = config.get("frontend_conf") or {}
        input_size = config.get("input_size") or frontend_conf.get("n_mels", 80) * frontend_conf.get("lfr_m", 1)
        self.encoder = resnet34(input_size=input_size, **config["encoder_conf"])
        pooling_conf = config.get("pooling_type_conf") or {}
        self.pooling_layer = statistic_pooling(pooling_dim=pooling_conf.get("pooling_dim", (2, 3)),
                                               eps=pooling_conf.get("eps", 1e-12))
        self.decoder = dense_decoder(vocab_size=vocab_size, encoder_output_size=2 * self.encoder.output_size(),
                                     **config["decoder_conf"])

    @torch.no_grad()
    def embedding(self, feats: torch.Tensor, node: str = "resnet1_dense") -> torch.Tensor:
        """One utterance (T, F) -> (D,): ``Speech2Xvector.calculate_embedding`` after its frontend
        (encode, pool with no lengths, decode, take the node)."""
        encoded, _ = self.encoder(feats[None], torch.tensor([feats.shape[0]]))
        _, embeddings = self.decoder(self.pooling_layer(encoded))
        return embeddings[node][0]

    @torch.no_grad()
    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        encoded, _ = self.encoder(feats[None], torch.tensor([feats.shape[0]]))
        return self.decoder(self.pooling_layer(encoded))[0][0]


def build_funasr_sv(config: dict, vocab_size: int, seed: int = 0) -> FunasrSV:
    """A FunasrSV with seeded random weights, BatchNorm statistics and affines included (so no
    BatchNorm is the identity), in eval mode."""
    torch.manual_seed(seed)
    model = FunasrSV(config, vocab_size)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(size, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.2)
    return model.eval()


def tiny_sv_config(n_mels: int = 24, vocab: int = 7) -> dict:
    """The released config's schema with small widths (every constructor argument kept)."""
    config = {key: value for key, value in RELEASED_SV_CONFIG.items()}
    config["encoder_conf"] = dict(RELEASED_SV_CONFIG["encoder_conf"], num_nodes_pooling_layer=12,
                                  layers_in_block=[2, 2, 2, 1], filters_in_block=[4, 6, 8, 8])
    config["decoder_conf"] = dict(RELEASED_SV_CONFIG["decoder_conf"], num_nodes_resnet1=16, num_nodes_last_layer=10)
    config["frontend_conf"] = dict(RELEASED_SV_CONFIG["frontend_conf"], n_mels=n_mels)
    config["token_list"] = [f"spk{index:03d}" for index in range(vocab)]
    return config
