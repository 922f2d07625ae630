"""What every reference model shares: its constructor arguments as ``config``, and ``reset_parameters``."""

from __future__ import annotations

import copy
from typing import Any, Dict

from torch import nn


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
            if module is not self and callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
