"""Int8 dynamic quantization of a loaded PyTorch model, for CPU decoding (``quantized=True`` with the
torch backend; ``infer --quantized``).

Every ``nn.Linear`` of the encoder and the decoder gets int8 weights, symmetric per output channel
(as the ONNX export's ``per_channel=True``), and quantizes its input (uint8) per call; the
parts whose small errors change *how many* tokens come out or *which* token wins stay in float,
as in the ONNX export's int8 model (``export/onnx_files.py``): the CIF predictor (its weights sum
to the token count), every output layer (the decoder's, SeACo's bias head, the CTC layer) and
everything that is not a Linear (convolutions, the FSMN memory, layer norms, embeddings).

torch 2.11 marks ``torch.ao.quantization.quantize_dynamic`` deprecated (eager-mode quantization is
moving to torchao, which this project does not install); it is still the CPU int8 path that
uses fbgemm's VNNI/AVX-512 kernels here. Its one-line notice is silenced; the result is tested.
"""
import warnings
from typing import List

import torch
from torch import nn

# Module-name parts kept in float (see the module docstring).
KEEP_FLOAT_PARTS = ("predictor", "output_layer", "ctc", "output_dense")


class QuantizeError(ValueError):
    """A model that cannot be quantized as asked (the message says why)."""


def linears_to_quantize(model: nn.Module) -> List[str]:
    """Qualified names of the Linear layers that :func:`quantize_int8` converts, in module order."""
    return [name for name, module in model.named_modules()
            if type(module) is nn.Linear and not any(part in name for part in KEEP_FLOAT_PARTS)]


def quantize_int8(model: nn.Module, device="cpu") -> nn.Module:
    """``model`` (in eval mode) with :func:`linears_to_quantize` as int8 dynamic Linears; CPU only."""
    if str(device) != "cpu":
        raise QuantizeError(f"int8 PyTorch decoding runs on the CPU, not on {device}")
    if "fbgemm" not in torch.backends.quantized.supported_engines and \
            "x86" not in torch.backends.quantized.supported_engines:
        raise QuantizeError("this torch build has no x86/fbgemm quantized engine "
                            f"(supported: {torch.backends.quantized.supported_engines})")
    names = linears_to_quantize(model)
    if not names:
        raise QuantizeError(f"{type(model).__name__} has no Linear layer to quantize")
    spec = {name: torch.ao.quantization.per_channel_dynamic_qconfig for name in names}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization.*deprecated.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(model.eval(), qconfig_spec=spec, dtype=torch.qint8)


__all__ = ["KEEP_FLOAT_PARTS", "QuantizeError", "linears_to_quantize", "quantize_int8"]
