r"""Contextual decomposition (CD) rules: how each op splits a value into the phrase's part β and the rest γ.

**Mechanism.** :class:`~captum_text_ext.attr.ContextualDecomposition` runs the user's model once, unchanged, under the
shared :class:`~captum_text_ext.decomposition.guard.OpGuard`. Its inputs are :class:`Decomposed` tensors: each *is* the
actual value (so the model computes exactly its own forward pass: lengths, masks, attention weights, max-pooling
positions and every gate are the real ones) and carries

- ``beta`` :math:`\beta` and ``gamma`` :math:`\gamma`, shaped :math:`(P, \ldots)` for :math:`P` phrases at once: the
  model runs on the :math:`N` examples, the phrases ride along as a leading dimension (ops that move numbers are
  applied to them with :func:`torch.vmap`), so examples × phrases go through one recurrent pass;
- ``pending``: a bias that a ``Linear``/``Conv1d`` (or an added constant) produced and no rule has split yet
  (:math:`\text{value} = \beta + \gamma + \text{pending}`);
- ``origin``: for every entry, the input token it was computed from position-wise (``1 + `` a flat index, ``0`` when
  it mixes positions); a recurrent layer reads it to know which of its steps are phrase positions.

Every op that touches a :class:`Decomposed` tensor is handled by the rule :func:`cd_op_table` registers for it, which
computes the actual value *and* the new parts; an op without a rule raises
:class:`~captum_text_ext.decomposition.guard.UnsupportedOperationError` (a ``TypeError`` naming the op and the module).
Ops on tensors that do not depend on the inputs run untouched.

**Rules.** With :math:`x = \beta + \gamma` (+ pending):

- *Routing* (indexing, views, ``cat``, ``stack``, ``where``, ``masked_fill``, ``pad``, packing, dropout in evaluation
  mode): applied to β, γ and the pending bias alike. Constant entries they bring in (padding values, fills, constant
  operands of ``cat``/``where``) belong to γ.
- *Weighted layers* ``Linear``, ``Conv1d``, ``Conv2d`` (and the bias-free linear maps ``sum``, ``mean``, ``matmul`` with a constant
  operand, average pooling): :math:`\beta' = W\beta`, :math:`\gamma' = W\gamma`; the bias :math:`b` stays pending and
  is split by the next op that is not routing in proportion to the parts' magnitudes (Singh et al., 2019):

  .. math::
      \beta \mathrel{+}= b\,\frac{|\beta|}{|\beta| + |\gamma|}, \qquad
      \gamma \mathrel{+}= b\,\frac{|\gamma|}{|\beta| + |\gamma|} \qquad (\text{halves when both are } 0).

  Whatever is still pending at the model's output is the output layer's bias, reported apart.
  Constants added with ``+``/``-`` are biases too. Products and quotients with a constant scale all parts.
- *ReLU*: :math:`\beta' = \mathrm{ReLU}(\beta)`, :math:`\gamma' = \mathrm{ReLU}(\beta + \gamma) - \mathrm{ReLU}(\beta)`.
- *Other element-wise activations* :math:`a` (tanh, sigmoid, ELU, GELU, clamp, ...): the two-player Shapley split with
  baseline 0; the constant :math:`a(0)` becomes a pending bias:

  .. math::
      \beta' = \tfrac12\big[a(\beta) - a(0) + a(\beta + \gamma) - a(\gamma)\big], \qquad
      \gamma' = \tfrac12\big[a(\gamma) - a(0) + a(\beta + \gamma) - a(\beta)\big].

- *Max pooling* (``max``, ``amax``, ``max_pool1d``, ...): the positions are picked by the actual value
  :math:`\beta + \gamma`, and β and γ are carried from there.
- *Softmax* outputs are gates (attention weights): constants from the actual forward pass, so
  :math:`\beta' = \sum_t \alpha_t \beta_t`.
- *Attention* (CD-T, Hsu et al., 2025; :mod:`.transformer`): a product of two decomposed tensors (``matmul`` of
  :math:`Q` and :math:`K^\top`) is known by its value only (:meth:`Decomposed.value_only`): ops on it give values, a
  softmax turns it into fixed weights, and reading its parts raises. ``scaled_dot_product_attention`` and
  ``multi_head_attention_forward`` take their weights :math:`A` from the actual run and map the value's parts,
  :math:`\beta' = W_O[A_h W_V^h \beta]_h` (the projections' biases pending).
- *LayerNorm*: :math:`\beta' = w \odot (\beta - \overline{\beta}) / \sqrt{\mathrm{Var}(x) + \epsilon}` (likewise γ)
  with the actual input :math:`x`, after its pending bias is split; its bias :math:`b` is pending. *RMSNorm*: every
  part and the pending bias scaled by :math:`w / \mathrm{RMS}(x)`.
- *LSTM / GRU* (``torch.lstm``, ``torch.gru``, ``torch.lstm_cell``, ``torch.gru_cell``; packed or padded, stacked,
  bidirectional): :func:`lstm_direction_cd` and :func:`gru_direction_cd` below, each direction in its own reading
  order, layer :math:`k`'s input arriving as (β, γ).

Element-wise products of two decomposed tensors, in-place ops, and everything else are refused.

**LSTM** (Murdoch et al., 2018, as in the authors' code). At step :math:`t` the pre-activation of each gate splits into
the phrase part :math:`P = W_h \beta_{t-1} + W_x \beta_{x,t}`, the other part
:math:`Q = W_h \gamma_{t-1} + W_x \gamma_{x,t}` and the bias :math:`b` (both PyTorch biases summed); for the first
layer :math:`\beta_{x,t} = x_t` at phrase positions and :math:`\gamma_{x,t} = x_t` elsewhere. Each
:math:`\sigma`/:math:`\tanh` is linearized bias first:

.. math::
    L(b) = a(b), \quad
    L(P) = \tfrac12\big[a(b + P) - a(b) + a(b + P + Q) - a(b + Q)\big], \quad
    L(Q) = \tfrac12\big[a(b + Q) - a(b) + a(b + P + Q) - a(b + P)\big]

.. math::
    \begin{aligned}
    \beta^c_t &= \big(L(f_P) + L(f_b)\big) \odot \beta^c_{t-1} + L(i_P) \odot \big(L(g_P) + L(g_b)\big)
        + L(i_b) \odot L(g_P) \;[+\, L(i_b) \odot L(g_b)] \\
    \gamma^c_t &= f_t \odot \gamma^c_{t-1} + L(f_Q) \odot \beta^c_{t-1} + L(i_Q) \odot g_t
        + \big(L(i_P) + L(i_b)\big) \odot L(g_Q) \;[+\, L(i_b) \odot L(g_b)] \\
    \beta_t &= o_t \odot \tfrac12\big[\tanh(\beta^c_t) + \tanh(\beta^c_t + \gamma^c_t) - \tanh(\gamma^c_t)\big],
    \qquad \gamma_t = o_t \odot \tfrac12\big[\tanh(\gamma^c_t) + \tanh(\beta^c_t + \gamma^c_t) - \tanh(\beta^c_t)\big]
    \end{aligned}

with the actual output gate :math:`o_t`. The bias-only product :math:`L(i_b) \odot L(g_b)` goes to β or γ by
``bias_product``: ``"phrase"`` — to β at phrase positions; ``"reference"`` — to β at phrase positions before the
phrase's last one in the direction's reading order (the authors' code); ``"never"`` — always to γ.

**GRU** (derived the same way from PyTorch's equations). The reset and update gates :math:`r, z` are linearized like
:math:`i, f` above. The candidate's pre-activation :math:`a = W_{in} x + b_{in} + r \odot m`,
:math:`m = W_{hn} h_{t-1} + b_{hn}` (with :math:`m_P = W_{hn}\beta_{t-1}`, :math:`m_Q = W_{hn}\gamma_{t-1}`), splits
like a gated product, the phrase owning the products of its gate part with bias terms:

.. math::
    \begin{aligned}
    n_b &= b_{in} + L(r_b) \odot b_{hn}, \qquad
    n_P = W_{in}\beta_{x,t} + L(r_P) \odot (m_P + b_{hn}) + L(r_b) \odot m_P, \\
    n_Q &= W_{in}\gamma_{x,t} + L(r_Q) \odot m + \big(L(r_P) + L(r_b)\big) \odot m_Q
    \end{aligned}

and :math:`\tanh` is linearized over :math:`(n_b, n_P, n_Q)` bias first. With :math:`u = 1 - z` split as
:math:`L(u_b) = 1 - L(z_b)`, :math:`L(u_P) = -L(z_P)`, :math:`L(u_Q) = -L(z_Q)`, the new state
:math:`h_t = u \odot n + z \odot h_{t-1}` splits as the LSTM cell does:

.. math::
    \begin{aligned}
    \beta_t &= L(u_P) \odot \big(L(n_P) + L(n_b)\big) + L(u_b) \odot L(n_P)
        + \big(L(z_P) + L(z_b)\big) \odot \beta_{t-1} \;[+\, L(u_b) \odot L(n_b)] \\
    \gamma_t &= L(u_Q) \odot n_t + \big(L(u_P) + L(u_b)\big) \odot L(n_Q) + z_t \odot \gamma_{t-1}
        + L(z_Q) \odot \beta_{t-1} \;[+\, L(u_b) \odot L(n_b)]
    \end{aligned}

with the bias-only product :math:`L(u_b) \odot L(n_b)` assigned by ``bias_product`` as for the LSTM.

**Phrase positions of a recurrent layer.** Step :math:`t` of a recurrent op is a phrase position when its input at
:math:`t` was computed position-wise (embeddings, projections, activations, dropout, routing, earlier recurrent layers)
from a token of the phrase, as ``origin`` records. An input that mixes positions (a convolution, a sum over time)
makes no step a phrase position, so its bias-only products go to γ. In every layer of a stacked LSTM/GRU the phrase
positions are the same token positions. For ``"reference"`` the phrase's last position is its last real (not padded)
step in the direction's reading order; a cell op (``nn.LSTMCell`` called in a loop) sees one step at a time and uses the
phrase's last token in forward order.

**Exactness.** Every rule keeps :math:`\beta + \gamma + \text{pending}` equal to the value up to rounding. Parts that
are exactly zero stay exactly zero: :math:`\beta = 0` before a phrase starts and for phrases at positions the model
never reads, and for a whole-sentence phrase with ``bias_product="phrase"`` :math:`\gamma` is exactly what the
initial states contribute (a constant or learned :math:`h_0, c_0` belongs to γ): 0 when they are 0. The projection of
``nn.LSTM(proj_size > 0)``, :math:`h_t = W_{hr}(o_t \odot \tanh(c_t))`, is linear without bias: β and γ are
projected alike.

The package has the same shape as :mod:`~captum_text_ext.decomposition.lrp`: :mod:`.decomposed` (what carries the
parts: the :class:`Decomposed` tensor and the run's state; :mod:`.call` re-runs an op on the parts), :mod:`.recurrent`
(the LSTM/GRU walk), :mod:`.rules`, :mod:`.routing` and :mod:`.transformer` (the other op groups) and :mod:`.table`
(the op table).

Examples:
    >>> import torch
    >>> from captum_text_ext.decomposition.guard import OpGuard
    >>> x = torch.tensor([[1.0, -2.0]])
    >>> d = Decomposed.wrap(x, beta=torch.tensor([[[1.0, 0.0]]]), gamma=torch.tensor([[[0.0, -2.0]]]))
    >>> run = CDRun.for_masks("phrase", [torch.ones(1, 1, 2, dtype=torch.bool)])
    >>> with OpGuard(cd_op_table(run), tracked=is_decomposed):
    ...     y = torch.relu(d * 3.0)
    >>> y.beta, y.gamma
    (tensor([[[3., 0.]]]), tensor([[[0., 0.]]]))
"""

from captum_text_ext.decomposition.cd.decomposed import BIAS_PRODUCTS, CDRun, Decomposed, is_decomposed, split_bias
from captum_text_ext.decomposition.cd.directions import gru_direction_cd, lstm_direction_cd
from captum_text_ext.decomposition.cd.recurrent import recurrent_cd
from captum_text_ext.decomposition.cd.table import REFUSED, cd_op_table

__all__ = [
    "BIAS_PRODUCTS",
    "REFUSED",
    "CDRun",
    "Decomposed",
    "cd_op_table",
    "gru_direction_cd",
    "is_decomposed",
    "lstm_direction_cd",
    "recurrent_cd",
    "split_bias",
]
