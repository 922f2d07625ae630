"""A binary bag-of-words multi-layer perceptron (Hechtlinger, 2016) and the bag-of-words featurisation it reads."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from captum_text_ext.datasets.collate import lengths_to_mask
from captum_text_ext.models._base import ReferenceModel

__all__ = ["BagOfWordsMLP", "bag_of_words"]


def bag_of_words(
    token_ids: Tensor,
    lengths: Optional[Tensor],
    num_features: int,
    ignore: Sequence[int] = (0, 1),
    *,
    dtype: Optional[torch.dtype] = None,
) -> Tensor:
    r"""Binary presence vectors: :math:`x_{n,j} = 1` when id :math:`j` occurs among the first ``lengths[n]`` tokens
    of sentence :math:`n` and is not in ``ignore``, else :math:`0`.

    Args:
        token_ids: :math:`(N, T)` int64.
        lengths: :math:`(N,)` real tokens per sentence; positions at or after a sentence's length are not read (their
            ids may be anything). ``None`` reads all :math:`T` tokens.
        num_features: :math:`D`, the vocabulary size.
        ignore: ids never set, by default the pad (0) and unknown (1) ids.
        dtype: the floating dtype of the result; the default dtype when ``None``.

    Returns:
        :math:`(N, D)` floats in :math:`\{0, 1\}`.

    Raises:
        ValueError: when ``lengths`` has the wrong shape or a read id lies outside :math:`[0, D)`.

    Examples:
        >>> bag_of_words(torch.tensor([[2, 4, 2, 1], [3, 0, 9, 9]]), torch.tensor([4, 1]), num_features=5)
        tensor([[0., 0., 1., 0., 1.],
                [0., 0., 0., 1., 0.]])
    """
    batch, steps = token_ids.shape
    if lengths is None:
        read = torch.ones_like(token_ids, dtype=torch.bool)
    elif tuple(lengths.shape) != (batch,):
        raise ValueError(f"Expected `lengths` to have shape ({batch},), but got {tuple(lengths.shape)}")
    else:
        read = lengths_to_mask(lengths.to(token_ids.device), steps)
    read_ids = token_ids[read]
    if read_ids.numel() and (int(read_ids.min()) < 0 or int(read_ids.max()) >= num_features):
        low, high = int(read_ids.min()), int(read_ids.max())
        raise ValueError(f"Expected token ids in [0, {num_features}), but got ids from {low} to {high}")
    ignored = torch.tensor(list(ignore), dtype=token_ids.dtype, device=token_ids.device)
    keep = read & ~torch.isin(token_ids, ignored)
    features = torch.zeros(batch, num_features, dtype=dtype or torch.get_default_dtype(), device=token_ids.device)
    return features.scatter_reduce_(1, token_ids.masked_fill(~keep, 0), keep.to(features.dtype), reduce="amax")


class BagOfWordsMLP(ReferenceModel):
    r"""Binary bag of words → (linear → ReLU → dropout) per hidden layer → linear (Hechtlinger, 2016).

    The input is the presence vector of :func:`bag_of_words` over the whole vocabulary (in the paper: the 5000 most
    frequent words, plus this package's pad and unknown tokens, which are never set). Word order and repetitions are
    invisible to the model, so a padded batch gives each sentence the logits it gets alone.

    Args:
        vocab_size: number of token ids, the input size :math:`D`.
        num_classes: number of output logits :math:`C`.
        hidden_sizes: the width of each hidden layer (the paper has two; the widths are this package's default).
        dropout: dropout after each hidden activation.
        ignore_ids: ids never counted as present (pad and unknown).

    Shape:
        - token_ids: :math:`(N, T)` int64.
        - lengths: :math:`(N,)` int64, optional; all :math:`T` tokens are read when omitted.
        - features (:meth:`forward_features`): :math:`(N, D)` float.
        - output: :math:`(N, C)` logits.

    Attributes:
        hidden_layers: the hidden ``nn.Linear`` layers in order.
        activations: one ``nn.ReLU`` per hidden layer.
        dropout: the ``nn.Dropout`` after each activation.
        output: the output ``nn.Linear``.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = BagOfWordsMLP(vocab_size=10, num_classes=2, hidden_sizes=(4, 3))
        >>> ids, lengths = torch.tensor([[2, 3, 4], [5, 6, 0]]), torch.tensor([3, 2])
        >>> model(ids, lengths).shape
        torch.Size([2, 2])
        >>> torch.equal(model(ids, lengths), model.forward_features(bag_of_words(ids, lengths, 10)))
        True

    References:
        Yotam Hechtlinger. Interpretation of Prediction Models Using the Input Gradient. arXiv:1611.07634, 2016.
    """

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        hidden_sizes: Sequence[int] = (256, 256),
        dropout: float = 0.0,
        ignore_ids: Sequence[int] = (0, 1),
    ) -> None:
        super().__init__()
        hidden_sizes, ignore_ids = [int(h) for h in hidden_sizes], [int(i) for i in ignore_ids]
        if hidden_sizes and min(hidden_sizes) < 1:
            raise ValueError(f"Expected positive `hidden_sizes`, but got {hidden_sizes}")
        self.vocab_size = vocab_size
        self.ignore_ids = tuple(ignore_ids)
        self._config: Dict[str, Any] = {
            "vocab_size": vocab_size,
            "num_classes": num_classes,
            "hidden_sizes": hidden_sizes,
            "dropout": dropout,
            "ignore_ids": ignore_ids,
        }
        sizes = [vocab_size, *hidden_sizes]
        self.hidden_layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        self.activations = nn.ModuleList(nn.ReLU() for _ in hidden_sizes)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(sizes[-1], num_classes)

    def extra_repr(self) -> str:
        return f"ignore_ids={self.ignore_ids}"

    def forward(self, token_ids: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        """Logits for token ids: :meth:`forward_features` of their :func:`bag_of_words`."""
        features = bag_of_words(token_ids, lengths, self.vocab_size, self.ignore_ids, dtype=self.output.weight.dtype)
        return self.forward_features(features)

    def forward_features(self, features: Tensor) -> Tensor:
        """Logits for :math:`(N, D)` bag-of-words features: the entry point for attributing at the input vector."""
        x = features
        for layer, activation in zip(self.hidden_layers, self.activations):
            x = self.dropout(activation(layer(x)))
        logits: Tensor = self.output(x)
        return logits
