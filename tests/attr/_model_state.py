"""What "the user's model and torch are left exactly as they were" means in the tests: the model's weights,
``requires_grad``, ``.grad``, every module's ``training`` flag and hooks; torch's grad mode, default dtype, thread
count, global random state and function-mode stack."""

from __future__ import annotations

from typing import Any, Dict

import torch
from torch import nn

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


def torch_state() -> Dict[str, Any]:
    """The global (and this thread's) torch state a call could leave changed."""
    return {
        "grad_enabled": torch.is_grad_enabled(),
        "inference_mode": torch.is_inference_mode_enabled(),
        "default_dtype": torch.get_default_dtype(),
        "num_threads": torch.get_num_threads(),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "anomaly": torch.is_anomaly_enabled(),
        "function_modes": torch._C._len_torch_function_stack(),
        "rng": torch.get_rng_state(),
    }


def assert_torch_unchanged(before: Dict[str, Any]) -> None:
    after = torch_state()
    assert torch.equal(before["rng"], after["rng"]), "the global random state changed"
    assert {k: v for k, v in before.items() if k != "rng"} == {k: v for k, v in after.items() if k != "rng"}
