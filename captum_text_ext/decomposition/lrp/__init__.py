r"""LRP rules as autograd functions: the "gradient = relevance" convention, with an LSTM/GRU rule over the unrolled
cells of :mod:`~captum_text_ext.decomposition.cells`.

While :class:`~captum_text_ext.attr.LSTMLRP` runs a model, every op on the path from the inputs to the output is run
by the rule :func:`lrp_op_table` holds for its op group (:mod:`~captum_text_ext.decomposition.ops`). Each handler computes exactly the value the op computes, and
attaches a backward that maps the relevance of the op's output to the relevance of its relevance-carrying input(s).
What flows backwards through autograd is then the relevance itself, and ops that only move numbers around (indexing,
``cat``, ``view``, ``PackedSequence`` packing, ``max``) route it correctly with their own backward.

**Weighted connections** :math:`z_j = \sum_i a_i w_{ij} + b_j` (the ε-rule, Arras et al. 2017, Sec. 2.2; :mod:`.rules`):

.. math::
    R_i = \sum_j \frac{a_i w_{ij} + \delta\,(b_j + \epsilon\,\mathrm{sign}(z_j)) / N_j}
                     {z_j + \epsilon\,\mathrm{sign}(z_j)}\, R_j, \qquad \mathrm{sign}(0) = +1,

with ``bias_factor`` :math:`\delta`. The paper prints the numerator as
:math:`a_i w_{ij} + (\epsilon\,\mathrm{sign}(z_j) + \delta b_j)/N` (the stabilizer is always spread); the authors'
released code multiplies both :math:`b_j` and :math:`\epsilon\,\mathrm{sign}(z_j)` by :math:`\delta` and calls the
printed form the initial version. We follow the code: with :math:`\delta = 0` bias and stabilizer absorb their part
(LRP-ε), with :math:`\delta = 1` every weighted connection conserves relevance.

:math:`N_j` is the number of inputs connected to :math:`z_j`: the fan-in of a ``Linear`` (``in_features``) or a
``Conv1d`` / ``Conv2d`` (``in_channels / groups`` times the kernel taps that fall inside the input, any kernel); :math:`E + H` for an LSTM's
cell input :math:`g`; for sums over data (``sum``, ``mean``, and ``matmul``/``bmm`` with a constant operand) the number
of terms that are not exactly 0, so that masked and padded positions count as unconnected and a padded batch equals
each sentence alone; for ``add``/``sub`` the number of relevance-carrying operands (constant operands act as bias).

**Multiplicative interactions** :math:`z = z_g \odot z_s` with a gate :math:`z_g`: :math:`R_g = 0`, :math:`R_s = R_z`.
A product (``mul``, ``div``, ``neg``) with a constant — a mask, ``1 / lengths`` — is such a product, and so is a
product with a softmax output: softmax outputs are gates (attention weights), they receive no relevance and are
constants for everything downstream. A product of two relevance-carrying tensors is refused.

**Selections.** A product with a constant tensor of 0s and 1s equals its factor where the mask is 1 and is exactly 0
elsewhere: it is marked as a selection. A sum whose relevance-carrying operands are all selections that never pick
the same entry, with no constant other than 0 where they pick (``h = m * h_new + (1 - m) * h`` in a hand-written
cell loop), is routed as ``torch.where`` routes: each entry's relevance goes to the operand it comes from
(:class:`~captum_text_ext.decomposition.lrp.relevance.SelectionSum`), exactly, instead of being shared by the ε-rule
(which would leak :math:`\epsilon` at every padded step).

**Element-wise activations** (ReLU, tanh, sigmoid, dropout in evaluation mode, ...) pass relevance through unchanged:
a ReLU does not zero the relevance of its dead units. Dropout in training mode is random and refused. **Max pooling** (``max``, ``amax``, ``max_pool1d``) gives all to the winner.

**LSTM** (:func:`lstm_direction_relevance`), per step in reverse reading order, with the paper's fan-in :math:`N = 2`
for the cell sum:

.. math::
    \begin{aligned}
    R_{c_t} &\mathrel{+}= R_{h_t} \quad (\text{all of } h_t = o_t \odot \tanh(c_t) \text{ goes to } c_t) \\
    R_{c_{t-1}} &= \frac{f_t \odot c_{t-1} + \delta\,\epsilon\,\mathrm{sign}(c_t)/2}
                        {c_t + \epsilon\,\mathrm{sign}(c_t)} \odot R_{c_t}, \qquad
    R_{g_t} = \frac{i_t \odot g_t + \delta\,\epsilon\,\mathrm{sign}(c_t)/2}
                   {c_t + \epsilon\,\mathrm{sign}(c_t)} \odot R_{c_t} \\
    R_{x_t}, R_{h_{t-1}} &\leftarrow \text{ε-rule on } z^g_t = W_{ig} x_t + W_{hg} h_{t-1} + b_{ig} + b_{hg}
        \text{ with } N = E + H \text{ and } R_{z^g_t} = R_{g_t}
    \end{aligned}

The gates :math:`i, f, o` never receive relevance. With ``cell_stabilizer="layer"``
(:class:`~captum_text_ext.decomposition.lrp.relevance.EpsilonRule`) the cell sum's stabilizer share
:math:`\delta\,\epsilon\,\mathrm{sign}(c_t)/2` of each unit is spread evenly over all :math:`2H` inputs of the
layer's sum instead, as the authors' released code does (``lrp_linear`` over an identity with ``bias_nb_units = 2d``);
likewise for the GRU's :math:`h_t`. A projection (``nn.LSTM(proj_size > 0)``),
:math:`h_t = W_{hr}(o_t \odot \tanh(c_t))`, is a weighted connection without bias (:math:`N = H`) whose relevance
then all goes to :math:`c_t`.

**GRU** (:func:`gru_direction_relevance`), derived the same way from PyTorch's equations:
:math:`h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}` is a weighted connection with two inputs per unit whose gates
:math:`1 - z_t` and :math:`z_t` get nothing; :math:`n_t = \tanh(a_t)` passes to
:math:`a_t = W_{in} x_t + b_{in} + p_t`, a weighted connection with :math:`N = E + 1` inputs (the :math:`E` inputs and
:math:`p_t`); :math:`p_t = r_t \odot m_t` is a gated product (the reset gate gets 0); and
:math:`m_t = W_{hn} h_{t-1} + b_{hn}` is a weighted connection with :math:`N = H`:

.. math::
    \begin{aligned}
    R_{n_t} &= \frac{(1 - z_t) \odot n_t + \delta\,\epsilon\,s_t/2}{h_t + \epsilon\,s_t} \odot R_{h_t}, \qquad
    R^{\text{direct}}_{h_{t-1}}
        = \frac{z_t \odot h_{t-1} + \delta\,\epsilon\,s_t/2}{h_t + \epsilon\,s_t} \odot R_{h_t},
    \qquad s_t = \mathrm{sign}(h_t) \\
    R_{x_t} &= x_t \odot W_{in}^\top q_t
        + \textstyle\sum_j \delta\,(b_{in,j} + \epsilon\,\mathrm{sign}(a_{t,j})) q_{t,j} / (E + 1),
        \qquad q_t = R_{n_t} / (a_t + \epsilon\,\mathrm{sign}(a_t)) \\
    R_{m_t} &= R_{p_t} = \big(p_t + \delta\,(b_{in} + \epsilon\,\mathrm{sign}(a_t)) / (E + 1)\big) \odot q_t \\
    R_{h_{t-1}} &= R^{\text{direct}}_{h_{t-1}} + h_{t-1} \odot W_{hn}^\top u_t
        + \textstyle\sum_j \delta\,(b_{hn,j} + \epsilon\,\mathrm{sign}(m_{t,j})) u_{t,j} / H, \qquad
        u_t = R_{m_t} / (m_t + \epsilon\,\mathrm{sign}(m_t))
    \end{aligned}

The gates :math:`r, z` never receive relevance. Both directions of a bidirectional layer are walked in their own
reading order and their input relevances summed; relevance on layer :math:`k`'s inputs is relevance on layer
:math:`k - 1`'s outputs; what remains on :math:`h_0, c_0` is the initial-state relevance.

The package has the same shape as :mod:`~captum_text_ext.decomposition.cd`: :mod:`.relevance` (what carries
relevance: the ε-rule's constants and the autograd functions whose backward is a rule), :mod:`.recurrent` (the LSTM/GRU
walk), :mod:`.rules` (the other op groups) and :mod:`.table` (the op table). :mod:`.transformer` holds
:class:`~captum_text_ext.TransformerLRP`'s rules (softmax, two-operand products, normalizations, attention kernels;
the AttnLRP and CP-LRP presets) and its table, which falls back on this table's rules for every other op.
"""

from captum_text_ext.decomposition.lrp.recurrent import (
    RecurrentLRP,
    gru_direction_relevance,
    lstm_direction_relevance,
    recurrent_relevance,
)
from captum_text_ext.decomposition.lrp.relevance import CELL_STABILIZERS, EpsilonRule, InitialState, LRPRun, sign0
from captum_text_ext.decomposition.lrp.table import REFUSED, lrp_op_table
from captum_text_ext.decomposition.lrp.transformer import PRESETS, TRANSFORMER_REFUSED, transformer_op_table

__all__ = [
    "CELL_STABILIZERS",
    "PRESETS",
    "REFUSED",
    "TRANSFORMER_REFUSED",
    "EpsilonRule",
    "InitialState",
    "LRPRun",
    "RecurrentLRP",
    "gru_direction_relevance",
    "lrp_op_table",
    "lstm_direction_relevance",
    "recurrent_relevance",
    "sign0",
    "transformer_op_table",
]
