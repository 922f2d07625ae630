"""What "the user's model is left exactly as it was" means in the tests: weights, ``requires_grad``, ``.grad``,
every module's ``training`` flag and hooks; and a model that can be told to call an op without a rule."""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import Tensor, nn

HOOK_DICTS = (
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_forward_hooks_with_kwargs",
    "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called", "_backward_pre_hooks",
)  # fmt: skip


def model_state(model: nn.Module) -> Dict[str, Any]:
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [p.grad for p in model.parameters()],
        "training": [m.training for m in model.modules()],
        "hooks": [{name: list(getattr(m, name, {}).keys()) for name in HOOK_DICTS} for m in model.modules()],
    }


def assert_model_unchanged(before: Dict[str, Any], model: nn.Module) -> None:
    after = model_state(model)
    assert before["params"].keys() == after["params"].keys()
    assert all(torch.equal(before["params"][k], after["params"][k]) for k in before["params"])
    assert before["requires_grad"] == after["requires_grad"]
    assert all(g is None for g in after["grads"])
    assert before["training"] == after["training"]
    assert before["hooks"] == after["hooks"]


class SwitchableLSTM(nn.Module):
    """A bi-LSTM model with dropout that can be told to call ``torch.exp``, an op no decomposition rule covers."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(3, 3, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(6, 2)
        self.bad = False

    def forward(self, x: Tensor) -> Tensor:
        h = self.drop(torch.cat(list(self.rnn(x)[1][0]), dim=-1))
        return self.fc(torch.exp(h) if self.bad else h)
