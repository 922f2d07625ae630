"""The decomposition core: one op guard that runs the user's model unchanged and hands every op to a method's rule,
with two rule packages of the same shape.

- :mod:`~captum_text_ext.decomposition.ops`: the op groups, named once; both rule tables are built from them.
- :mod:`~captum_text_ext.decomposition.guard`: :class:`OpGuard` (a per-call, per-thread
  :class:`~torch.overrides.TorchFunctionMode`) dispatches every op that touches a tracked tensor to its rule in an
  :class:`OpTable`, and refuses the ops without one (:class:`UnsupportedOperationError`).
- :mod:`~captum_text_ext.decomposition.run`: :class:`GuardedForward`, the one guarded run of the user's forward
  function both methods use, and :class:`Run`, the per-call state the rules share.
- :mod:`~captum_text_ext.decomposition.hooks`: hooks that live for one call and one thread (:class:`ScopedHooks`,
  :class:`LayerCapture`, :class:`ModuleTracker`).
- :mod:`~captum_text_ext.decomposition.cells`: LSTM/GRU layers unrolled into per-step gates (both methods walk them).
- :mod:`~captum_text_ext.decomposition.bags`: ``nn.EmbeddingBag`` read as its looked-up rows and a map the rule
  tables know (where a layer method hooked on a bag starts).
- :mod:`~captum_text_ext.decomposition.lrp`: the LRP rules (relevance carrier, recurrent walk, rules, table).
- :mod:`~captum_text_ext.decomposition.cd`: the contextual decomposition rules (decomposed tensor, recurrent walk,
  rules, table).

The core never imports the Captum-facing classes of :mod:`captum_text_ext.attr`, which build on it.
"""

from captum_text_ext.decomposition.guard import (
    OpGuard,
    OpTable,
    RandomOpCheck,
    RandomOpError,
    Rule,
    UnsupportedOperationError,
    is_random_call,
    is_tracked,
)
from captum_text_ext.decomposition.hooks import LayerCapture, ModuleTracker, ScopedHooks, modules_of
from captum_text_ext.decomposition.ops import GROUPS, OpGroup, op_name, ops_named
from captum_text_ext.decomposition.run import GuardedForward, Run, forward_args, model_output
from captum_text_ext.decomposition.supported import supported_modules, supported_ops

__all__ = [
    "GROUPS",
    "GuardedForward",
    "LayerCapture",
    "ModuleTracker",
    "OpGroup",
    "OpGuard",
    "OpTable",
    "RandomOpCheck",
    "RandomOpError",
    "Rule",
    "Run",
    "ScopedHooks",
    "UnsupportedOperationError",
    "forward_args",
    "is_random_call",
    "is_tracked",
    "model_output",
    "modules_of",
    "op_name",
    "ops_named",
    "supported_modules",
    "supported_ops",
]
