"""FunASR's ``DenseDecoder`` (``decoder: dense``): pooled statistics -> embeddings -> speaker logits."""

from typing import Dict, Tuple

import torch
from torch import nn
from torch.nn import functional as F

# The layers whose output FunASR's sv inference can return (its ``embedding_node``).
EMBEDDING_NODES = ("resnet1_dense", "resnet2_dense")


class DenseDecoder(nn.Module):
    """Linear -> ReLU -> BN, twice, then a bias-free Linear to the speakers (FunASR's weight names).

    Args:
        vocab_size: speakers of the training set (rows of ``output_dense``).
        encoder_output_size: input dim: the pooled statistics, 2 x the encoder's channels.
        num_nodes_resnet1, num_nodes_last_layer: widths of the two dense layers.
        batchnorm_momentum: BatchNorm momentum (training only).
    """

    def __init__(self, vocab_size: int, encoder_output_size: int, num_nodes_resnet1: int = 256,
                 num_nodes_last_layer: int = 256, batchnorm_momentum: float = 0.5):
        super().__init__()
        self.resnet1_dense = nn.Linear(encoder_output_size, num_nodes_resnet1)
        self.resnet1_bn = nn.BatchNorm1d(num_nodes_resnet1, eps=1e-3, momentum=batchnorm_momentum)
        self.resnet2_dense = nn.Linear(num_nodes_resnet1, num_nodes_last_layer)
        self.resnet2_bn = nn.BatchNorm1d(num_nodes_last_layer, eps=1e-3, momentum=batchnorm_momentum)
        self.output_dense = nn.Linear(num_nodes_last_layer, vocab_size, bias=False)

    def forward(self, pooled: torch.Tensor, cosine: bool = False) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """(B, encoder_output_size) -> logits (B, vocab_size), {node: (B, width)} for EMBEDDING_NODES
        (each dense layer's output before its ReLU, as FunASR records them).

        ``cosine``: the logits are instead the cosines between the last hidden layer and each row of
        ``output_dense`` (the input of the AAM-softmax training loss, funasr_lite.models.losses)."""
        embeddings = {}
        x = self.resnet1_dense(pooled)
        embeddings["resnet1_dense"] = x
        x = self.resnet1_bn(F.relu(x))
        x = self.resnet2_dense(x)
        embeddings["resnet2_dense"] = x
        x = self.resnet2_bn(F.relu(x))
        if cosine:
            return F.linear(F.normalize(x, dim=-1), F.normalize(self.output_dense.weight, dim=-1)), embeddings
        return self.output_dense(x), embeddings
