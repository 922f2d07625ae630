r"""Both presets of :class:`~captum_text_ext.TransformerLRP` written out layer by layer, without autograd or the op
guard, for the tiny Hugging Face classifiers of ``_transformer_models`` (BERT, RoBERTa, DistilBERT: post-norm
encoder layers, a tanh or ReLU head on the first position): the test oracle of ``test_transformer_lrp.py``.

Forward, from the embeddings module's output :math:`e` and the additive mask :math:`M` (0 where attended, the dtype's
minimum where not), per layer: :math:`q, k, v = \text{Linear}(e)`, split into heads;
:math:`s = qk^\top d^{-1/2} + M`, :math:`p = \mathrm{softmax}(s)`, :math:`c = pv`, :math:`a = \text{Linear}(c)`,
:math:`h = \mathrm{LN}_1(a + e)`, :math:`f = \text{Linear}(\mathrm{act}(\text{Linear}(h)))`,
:math:`e' = \mathrm{LN}_2(f + h)`; the head reads :math:`\text{Linear}(\tanh\text{ or ReLU}(\text{Linear}(e_L[:, 0])))`.

Backward, with :math:`\hat z = z + \epsilon\,\mathrm{sign}(z)` (:math:`\mathrm{sign}(0) = 1`): a Linear
:math:`z = W x + b` gives :math:`R_x = x \odot W^\top (R_z / \hat z)`; a sum :math:`z = x + y` gives
:math:`R_x = x \odot R_z / \hat z`; an activation passes :math:`R`; LayerNorm :math:`y = w (x - \bar x)/\sigma + b`
gives :math:`R_x = x \odot \frac1\sigma (g - \bar g)`, :math:`g = w \odot R_y / \hat y`; the mask's zeros pass
:math:`R_s` to :math:`qk^\top d^{-1/2}` and the scale passes it on; ``"cp"``: :math:`R_v = v \odot p^\top
(R_c / \hat c)` and nothing to :math:`p`; ``"attnlrp"``: :math:`R_p = \tfrac12 p \odot (R_c / \hat c) v^\top`,
:math:`R_v = \tfrac12 v \odot p^\top (R_c / \hat c)`, :math:`R_s = s \odot (R_p - p \sum R_p)` and with
:math:`G = R_s / \widehat{qk^\top}`: :math:`R_q = \tfrac12 q \odot G k`, :math:`R_k = \tfrac12 k \odot G^\top q`.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Tuple

import torch
from torch import Tensor, nn

Act = Callable[[Tensor], Tensor]


@dataclasses.dataclass(frozen=True)
class EncoderLayer:
    """One post-norm encoder layer's modules."""

    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    out: nn.Linear
    norm1: nn.LayerNorm
    up: nn.Linear
    act: Act
    down: nn.Linear
    norm2: nn.LayerNorm


@dataclasses.dataclass(frozen=True)
class Encoder:
    """A Hugging Face classifier's encoder layers and head, read from the model."""

    layers: List[EncoderLayer]
    heads: int
    head_dense: nn.Linear
    head_act: Act
    head_out: nn.Linear

    @classmethod
    def of(cls, hf_model: nn.Module) -> "Encoder":
        """The encoder of a ``BertFor…``, ``RobertaFor…`` or ``DistilBertForSequenceClassification``."""
        gelu: Act = torch.nn.functional.gelu
        kind = type(hf_model).__name__
        if kind.startswith("DistilBert"):
            blocks = hf_model.distilbert.transformer.layer
            layers = [EncoderLayer(b.attention.q_lin, b.attention.k_lin, b.attention.v_lin, b.attention.out_lin,
                                   b.sa_layer_norm, b.ffn.lin1, gelu, b.ffn.lin2, b.output_layer_norm) for b in blocks]
            return cls(layers, hf_model.config.n_heads, hf_model.pre_classifier, torch.relu, hf_model.classifier)
        blocks = hf_model.base_model.encoder.layer
        layers = [EncoderLayer(b.attention.self.query, b.attention.self.key, b.attention.self.value,
                               b.attention.output.dense, b.attention.output.LayerNorm, b.intermediate.dense, gelu,
                               b.output.dense, b.output.LayerNorm) for b in blocks]
        heads = hf_model.config.num_attention_heads
        if kind.startswith("Roberta"):
            return cls(layers, heads, hf_model.classifier.dense, torch.tanh, hf_model.classifier.out_proj)
        return cls(layers, heads, hf_model.bert.pooler.dense, torch.tanh, hf_model.classifier)


def _hat(z: Tensor, eps: float) -> Tensor:
    return z + eps * torch.where(z >= 0, 1.0, -1.0).to(z)


def _linear_back(x: Tensor, layer: nn.Linear, z: Tensor, r: Tensor, eps: float) -> Tensor:
    return x * ((r / _hat(z, eps)) @ layer.weight)


def _norm(x: Tensor, layer: nn.LayerNorm) -> Tuple[Tensor, Tensor]:
    sigma = torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + layer.eps)
    return (x - x.mean(-1, keepdim=True)) / sigma * layer.weight + layer.bias, sigma


def _norm_back(x: Tensor, layer: nn.LayerNorm, y: Tensor, sigma: Tensor, r: Tensor, eps: float) -> Tensor:
    g = layer.weight * r / _hat(y, eps)
    return x * (g - g.mean(-1, keepdim=True)) / sigma


def _split(x: Tensor, heads: int) -> Tensor:
    n, t, d = x.shape
    return x.view(n, t, heads, d // heads).transpose(1, 2)


def _merge(x: Tensor) -> Tensor:
    n, h, t, d = x.shape
    return x.transpose(1, 2).reshape(n, t, h * d)


@torch.no_grad()
def oracle_relevance(
    encoder: Encoder, e: Tensor, attend: Tensor, target: int, preset: str, eps: float
) -> Tuple[Tensor, Tensor]:
    r"""The relevance of the embeddings output ``e`` :math:`(N, T, D)` for logit ``target`` (``attend``
    :math:`(N, T)`: 1 at the real tokens), and :math:`(N,)` what the softmax rule leaked, summed over the layers:
    :math:`\sum R_p - \sum R_s` (0 under ``"cp"``)."""
    minimum = torch.finfo(e.dtype).min
    mask = torch.zeros(attend.shape, dtype=e.dtype).masked_fill(~attend.bool(), minimum)[:, None, None, :]
    saved = []
    x = e
    for layer in encoder.layers:
        q, k, v = (_split(m(x), encoder.heads) for m in (layer.query, layer.key, layer.value))
        scale = q.shape[-1] ** -0.5
        qk = q @ k.transpose(-1, -2)
        s = qk * scale + mask
        p = torch.softmax(s, -1)
        c = p @ v
        a = layer.out(_merge(c))
        h, sigma1 = _norm(a + x, layer.norm1)
        up = layer.up(h)
        f = layer.down(layer.act(up))
        out, sigma2 = _norm(f + h, layer.norm2)
        saved.append((x, q, k, v, qk, s, p, c, a, h, sigma1, up, f, out, sigma2))
        x = out
    first = x[:, 0]
    pre = encoder.head_dense(first)
    logits = encoder.head_out(encoder.head_act(pre))
    r_logits = torch.zeros_like(logits)
    r_logits[:, target] = logits[:, target]
    r_pre = _linear_back(encoder.head_act(pre), encoder.head_out, logits, r_logits, eps)
    leak = torch.zeros_like(logits[:, 0])
    r_x = torch.zeros_like(x)
    r_x[:, 0] = _linear_back(first, encoder.head_dense, pre, r_pre, eps)
    for layer, (x, q, k, v, qk, s, p, c, a, h, sigma1, up, f, out, sigma2) in zip(
        reversed(encoder.layers), reversed(saved)
    ):
        r_sum2 = _norm_back(f + h, layer.norm2, out, sigma2, r_x, eps)
        r_f, r_h = f * r_sum2 / _hat(f + h, eps), h * r_sum2 / _hat(f + h, eps)
        r_h = r_h + _linear_back(h, layer.up, up, _linear_back(layer.act(up), layer.down, f, r_f, eps), eps)
        r_sum1 = _norm_back(a + x, layer.norm1, h, sigma1, r_h, eps)
        r_a, r_x = a * r_sum1 / _hat(a + x, eps), x * r_sum1 / _hat(a + x, eps)
        merged = _merge(c)
        r_c = _split(_linear_back(merged, layer.out, a, r_a, eps), encoder.heads)
        ratio = r_c / _hat(c, eps)
        if preset == "cp":
            r_v = v * (p.transpose(-1, -2) @ ratio)
            r_q = r_k = torch.zeros_like(q)
        else:
            r_v = v * (p.transpose(-1, -2) @ ratio) / 2
            r_p = p * (ratio @ v.transpose(-1, -2)) / 2
            logits_s = torch.where(torch.isneginf(s), torch.zeros_like(s), s)
            r_s = logits_s * (r_p - p * r_p.sum(-1, keepdim=True))
            leak = leak + (r_p - r_s).flatten(1).sum(1)
            r_scores = torch.where(mask == 0, r_s, (qk * (q.shape[-1] ** -0.5)) * r_s / _hat(s, eps))
            g = r_scores / _hat(qk, eps)
            r_q = q * (g @ k) / 2
            r_k = k * (g.transpose(-1, -2) @ q) / 2
        for projection, r_part, part in ((layer.query, r_q, q), (layer.key, r_k, k), (layer.value, r_v, v)):
            r_x = r_x + _linear_back(x, projection, _merge(part), _merge(r_part), eps)
    return r_x, leak
