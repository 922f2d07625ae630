"""What every reference model shares: its constructor arguments as ``config``, ``reset_parameters``, and (for the
models that embed tokens) a forward pass from the token embeddings."""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, cast

from torch import Tensor, nn

__all__ = ["ReferenceModel", "embedding_forward"]


class ReferenceModel(nn.Module):
    """Base of the reference models. A subclass stores its constructor's keyword arguments, as plain values, in
    ``self._config``."""

    _config: Dict[str, Any]

    @property
    def config(self) -> Dict[str, Any]:
        """The constructor's keyword arguments as plain values: ``type(model)(**model.config)`` rebuilds the model."""
        return copy.deepcopy(self._config)

    def reset_parameters(self) -> None:
        """Re-initialise every layer as its constructor does (a pad embedding becomes zero again)."""
        for module in self.modules():
            reset = getattr(module, "reset_parameters", None)
            if module is not self and callable(reset):
                reset()


def embedding_forward(model: nn.Module) -> Callable[..., Tensor]:
    """The model's ``forward_embeddings(embeddings, lengths)``: its forward pass from the token embeddings, which the
    attribution methods explain.

    Raises:
        TypeError: when the model has none (e.g. a bag-of-words model).
    """
    forward: object = getattr(model, "forward_embeddings", None)
    if not callable(forward):
        raise TypeError(f"Expected a model with a `forward_embeddings` method, but {type(model).__name__} has none")
    return cast(Callable[..., Tensor], forward)
