"""The shared core of the decomposition methods: unrolled LSTM/GRU cells, the op guard, and the LRP rules.

- :mod:`~captum_text_ext.decomposition.cells`: :class:`RecurrentSpec` (an ``nn.LSTM``/``nn.GRU`` as per-layer,
  per-direction :class:`CellWeights`), :func:`lstm_step` / :func:`gru_step` and :func:`unroll`, which reproduces the
  fused layers on padded, time-major batches and records every gate in a :class:`RecurrentTrace`, and
  :class:`FusedRecurrentCall`, which reads an intercepted ``torch.lstm``/``torch.gru``/cell call (packed or padded,
  ``batch_first`` or not) into that form and rebuilds the op's result. LRP walks a trace backwards; contextual
  decomposition walks the cells forwards with the trace's actual activations.
- :mod:`~captum_text_ext.decomposition.guard`: :class:`OpGuard`, the one place that dispatches every op of a model run
  to a method's rule and refuses the ops without one (:class:`UnsupportedOperationError`), plus the shared model
  contexts (:func:`frozen_modules`, :class:`ModuleTracker`).
- :mod:`~captum_text_ext.decomposition.lrp_rules`: the LRP rules, as autograd functions, and their op table.
- :mod:`~captum_text_ext.decomposition.cd_rules`: the contextual decomposition rules (a :class:`Decomposed` tensor
  carries the phrase's part β and the rest γ through the model), the LSTM/GRU CD recurrences and their op table.
"""

from captum_text_ext.decomposition.cd_rules import (
    BIAS_PRODUCTS,
    CDRun,
    Decomposed,
    cd_op_table,
    gru_direction_cd,
    is_decomposed,
    lstm_direction_cd,
    recurrent_cd,
)
from captum_text_ext.decomposition.cells import (
    CELLS,
    GATE_ORDER,
    CellWeights,
    DirectionTrace,
    FusedRecurrentCall,
    GRUStep,
    LSTMStep,
    RecurrentSpec,
    RecurrentTrace,
    gru_step,
    lstm_step,
    unroll,
    unroll_direction,
)
from captum_text_ext.decomposition.guard import (
    ModuleTracker,
    OpGuard,
    OpTable,
    UnsupportedOperationError,
    frozen_modules,
    modules_of,
    op_name,
    ops_named,
)
from captum_text_ext.decomposition.lrp_rules import (
    EpsilonRule,
    LRPRun,
    gru_direction_relevance,
    lrp_op_table,
    lstm_direction_relevance,
    recurrent_relevance,
    sign0,
)

__all__ = [
    "BIAS_PRODUCTS",
    "CDRun",
    "CELLS",
    "CellWeights",
    "Decomposed",
    "DirectionTrace",
    "EpsilonRule",
    "FusedRecurrentCall",
    "GATE_ORDER",
    "GRUStep",
    "LRPRun",
    "LSTMStep",
    "ModuleTracker",
    "OpGuard",
    "OpTable",
    "RecurrentSpec",
    "RecurrentTrace",
    "UnsupportedOperationError",
    "cd_op_table",
    "frozen_modules",
    "gru_direction_cd",
    "gru_direction_relevance",
    "gru_step",
    "is_decomposed",
    "lrp_op_table",
    "lstm_direction_cd",
    "lstm_direction_relevance",
    "lstm_step",
    "modules_of",
    "op_name",
    "ops_named",
    "recurrent_cd",
    "recurrent_relevance",
    "sign0",
    "unroll",
    "unroll_direction",
]
