"""ContextualDecomposition / LayerContextualDecomposition over a zoo of architectures: padding, batching, the contrast
target, tuples, refusals, argument checks and Captum's metrics (float64, tiny models). The Captum contract every class
shares is in ``test_contract.py``."""

from __future__ import annotations

from typing import Any, Tuple

import pytest
import torch
from captum.metrics import infidelity, sensitivity_max
from test_contextual_decomposition import LENGTHS, MODES, STEPS, ZOO, _contiguous_phrases, _embeddings, build
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from _model_state import assert_model_unchanged, model_state
from captum_text_ext import ContextualDecomposition, LayerContextualDecomposition
from captum_text_ext.models import LSTMClassifier, TextCNN

PADDING = 1e-12


def _garbage_padding(seed: int) -> Tensor:
    """Embeddings whose padded positions hold non-zero values the models never read."""
    x = _embeddings(seed)
    noise = torch.randn(x.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed + 100))
    real = (torch.arange(STEPS) < LENGTHS.unsqueeze(1)).unsqueeze(-1)
    return torch.where(real, x, noise)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(ZOO))
def test_padded_batch_equals_each_sentence_alone(name: str, mode: str) -> None:
    forward, _ = build(name, seed=1)
    x, masks = _garbage_padding(2), _contiguous_phrases(3)
    if name == "lstm-mlp-head-last-token":
        # this model runs its LSTM over the padding too (no lengths): phrase positions there are read, and with
        # "reference" they move the phrase's last position; phrases of real tokens only
        masks = masks & (torch.arange(STEPS) < LENGTHS.unsqueeze(1))
    cd = ContextualDecomposition(forward, mode)
    relevant, irrelevant, bias = cd.decompose(x, masks, LENGTHS, return_bias=True)
    for n, length in enumerate(LENGTHS.tolist()):
        alone = cd.decompose(x[n : n + 1, :length], masks[:, n : n + 1, :length], LENGTHS[n : n + 1], True)
        assert (relevant[:, n] - alone[0][:, 0]).abs().max() < PADDING
        assert (irrelevant[:, n] - alone[1][:, 0]).abs().max() < PADDING
        assert torch.equal(bias[n], alone[2][0])


@pytest.mark.parametrize("name", list(ZOO))
def test_positions_never_read_score_exactly_zero(name: str) -> None:
    forward, _ = build(name, seed=5)  # a seed where every zoo model's output depends on its real tokens
    x = _garbage_padding(4)
    cd = ContextualDecomposition(forward)
    attributions = cd.attribute(x, target=1, additional_forward_args=LENGTHS)
    words = torch.eye(STEPS, dtype=torch.bool).unsqueeze(1).expand(STEPS, 3, STEPS)
    relevant = cd.decompose(x, words, LENGTHS)[0]
    empty = cd.decompose(x, torch.zeros(3, STEPS, dtype=torch.bool), LENGTHS)[0]
    assert torch.count_nonzero(empty) == 0
    for n, length in enumerate(LENGTHS.tolist()):
        assert torch.count_nonzero(attributions[n, length:]) == 0
        assert torch.count_nonzero(relevant[length:, n]) == 0
        assert torch.count_nonzero(attributions[n, :length]) > 0


@pytest.mark.parametrize("name", ["lstm-2-bi-max", "gru-2-uni-attention", "textcnn-parallel"])
def test_phrases_in_one_pass_equal_separate_calls(name: str) -> None:
    forward, _ = build(name, seed=3)
    x, masks = _embeddings(5), _contiguous_phrases(6, phrases=5)
    cd = ContextualDecomposition(forward, "reference")
    relevant, irrelevant = cd.decompose(x, masks, LENGTHS)
    for p in range(masks.shape[0]):
        one = cd.decompose(x, masks[p], LENGTHS)
        assert one[0].shape == (3, 3)
        assert (relevant[p] - one[0]).abs().max() < 1e-12 and (irrelevant[p] - one[1]).abs().max() < 1e-12


class SortedPacking(nn.Module):
    """Sorts the batch by length itself, packs with enforce_sorted=True, and restores the order (old-style code)."""

    def __init__(self, reference: LSTMClassifier) -> None:
        super().__init__()
        self.rnn, self.output = reference.rnn, reference.output

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        order = torch.argsort(lengths, descending=True)
        packed = pack_padded_sequence(x.index_select(0, order), lengths[order], batch_first=True)
        _, (h_n, _) = self.rnn(packed)
        features = torch.cat([h_n[-2], h_n[-1]], dim=-1)
        return self.output(features.index_select(0, torch.argsort(order)))


@pytest.mark.parametrize("mode", MODES)
def test_a_model_that_reorders_the_batch_keeps_the_phrase_positions(mode: str) -> None:
    torch.manual_seed(4)
    model = LSTMClassifier(10, 3, 3, 3, bidirectional=True, pooling="last").double()
    x, masks = _embeddings(6), _contiguous_phrases(7)
    expected = ContextualDecomposition(model.forward_embeddings, mode).decompose(x, masks, LENGTHS)
    got = ContextualDecomposition(SortedPacking(model), mode).decompose(x, masks, LENGTHS)
    assert (got[0] - expected[0]).abs().max() < 1e-12 and (got[1] - expected[1]).abs().max() < 1e-12


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stacked_modules_equal_one_multilayer_module(cell: str, mode: str) -> None:
    """Layer 2's phrase positions are the token positions, whether the layers are one module or two."""
    torch.manual_seed(5)
    rnn_type = nn.LSTM if cell == "lstm" else nn.GRU
    fused = rnn_type(3, 3, num_layers=2, bidirectional=True, batch_first=True).double()
    first = rnn_type(3, 3, bidirectional=True, batch_first=True).double()
    second = rnn_type(6, 3, bidirectional=True, batch_first=True).double()
    for layer, module in ((0, first), (1, second)):
        module.load_state_dict(
            {
                name.replace(f"_l{layer}", "_l0"): value
                for name, value in fused.state_dict().items()
                if f"_l{layer}" in name
            }
        )
    fc = nn.Linear(6, 2).double()

    def one(x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        outputs = pad_packed_sequence(fused(packed)[0], batch_first=True, total_length=STEPS)[0]
        return fc(outputs.sum(1))

    def two(x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        outputs = pad_packed_sequence(second(first(packed)[0])[0], batch_first=True, total_length=STEPS)[0]
        return fc(outputs.sum(1))

    x, masks = _embeddings(7), _contiguous_phrases(8)
    expected = ContextualDecomposition(one, mode).decompose(x, masks, LENGTHS)
    got = ContextualDecomposition(two, mode).decompose(x, masks, LENGTHS)
    assert (got[0] - expected[0]).abs().max() < 1e-12 and (got[1] - expected[1]).abs().max() < 1e-12


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cell_loops_equal_the_fused_layer(cell: str, mode: str) -> None:
    torch.manual_seed(6)
    fused = (nn.LSTM if cell == "lstm" else nn.GRU)(3, 4, batch_first=True).double()
    step = (nn.LSTMCell if cell == "lstm" else nn.GRUCell)(3, 4).double()
    step.load_state_dict({k[:-3]: v for k, v in fused.state_dict().items()})
    fc = nn.Linear(4, 3).double()

    def fused_model(x: Tensor) -> Tensor:
        state = fused(x)[1]
        return fc((state[0] if cell == "lstm" else state)[-1])

    def loop(x: Tensor) -> Tensor:
        hx: Any = None
        for t in range(x.shape[1]):
            hx = step(x[:, t], hx)
        return fc(hx[0] if cell == "lstm" else hx)

    x = torch.randn(2, 5, 3, dtype=torch.float64)
    masks = torch.zeros(3, 2, 5, dtype=torch.bool)
    masks[0, :, 1:3], masks[1, :, 4], masks[2, :, :] = True, True, True
    expected = ContextualDecomposition(fused_model, mode).decompose(x, masks)
    got = ContextualDecomposition(loop, mode).decompose(x, masks)
    assert (got[0] - expected[0]).abs().max() < 1e-12 and (got[1] - expected[1]).abs().max() < 1e-12


def test_a_recurrent_layer_after_a_convolution_has_no_phrase_positions() -> None:
    """A convolution mixes positions: no recurrent step is a phrase position, so "phrase" equals "never"."""
    torch.manual_seed(7)
    conv, rnn, fc = nn.Conv1d(3, 3, 3, padding=1).double(), nn.LSTM(3, 3, batch_first=True).double(), nn.Linear(3, 2)
    fc = fc.double()

    def model(x: Tensor) -> Tensor:
        return fc(rnn(torch.relu(conv(x.transpose(1, 2))).transpose(1, 2))[1][0][-1])

    x = torch.randn(2, 5, 3, dtype=torch.float64)
    whole = torch.ones(2, 5, dtype=torch.bool)
    phrase = ContextualDecomposition(model, "phrase").decompose(x, whole)
    never = ContextualDecomposition(model, "never").decompose(x, whole)
    assert torch.equal(phrase[0], never[0]) and phrase[1].abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------------------------
# Captum: targets, tuples, metrics, the interface
# ----------------------------------------------------------------------------------------------------------------


def test_contrast_takes_captum_target_forms() -> None:
    forward, _ = build("lstm-1-bi-attention")
    x = _embeddings(8)
    cd = ContextualDecomposition(forward)
    by_example = torch.stack([cd.attribute(x, 1, LENGTHS, contrast=c)[n] for n, c in enumerate([2, 0, 2])])
    assert (cd.attribute(x, 1, LENGTHS, contrast=[2, 0, 2]) - by_example).abs().max() < 1e-12
    assert (cd.attribute(x, 1, LENGTHS, contrast=0) - (cd.attribute(x, 1, LENGTHS) - cd.attribute(x, 0, LENGTHS))
            ).abs().max() < 1e-12

    def grid_output(embeddings: Tensor, lengths: Tensor) -> Tensor:
        return forward(embeddings, lengths).unsqueeze(1).expand(-1, 2, -1)

    with pytest.raises(ValueError, match=r"Expected `contrast` to select one score per example \(3\)"):
        ContextualDecomposition(grid_output).attribute(x, (0, 1), LENGTHS, contrast=1)


def test_tuple_inputs_are_decomposed_together() -> None:
    torch.manual_seed(8)

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.left, self.right = nn.LSTM(3, 2, batch_first=True), nn.GRU(3, 2, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, a: Tensor, b: Tensor) -> Tensor:
            return self.fc(torch.cat([self.left(a)[1][0][-1], self.right(b)[1][-1]], dim=-1))

    model = Pair().double()
    a, b = torch.randn(2, 4, 3, dtype=torch.float64), torch.randn(2, 3, 3, dtype=torch.float64)
    cd = ContextualDecomposition(model)
    masks = (torch.zeros(2, 4, dtype=torch.bool), torch.ones(2, 3, dtype=torch.bool))
    relevant, irrelevant, bias = cd.decompose((a, b), masks, return_bias=True)
    assert (relevant + irrelevant + bias - model(a, b)).abs().max() < 1e-10
    # a group spanning both inputs: its beta is spread over the tokens of both
    groups = (torch.tensor([[0, 0, 1, 1]]), torch.tensor([[1, 2, 2]]))
    grouped = cd.attribute((a, b), 1, feature_mask=groups)
    assert [tuple(g.shape) for g in grouped] == [(2, 4), (2, 3)]
    spanning = cd.decompose((a, b), (groups[0].expand(2, -1) == 1, groups[1].expand(2, -1) == 1))[0][:, 1]
    total = grouped[0][:, 2:].sum(1) + grouped[1][:, :1].sum(1)
    assert (total - spanning).abs().max() < 1e-12


def test_captum_metrics_accept_attributions() -> None:
    forward, _ = build("gru-1-bi-last")
    x = _embeddings(9)
    cd = ContextualDecomposition(forward)
    scores = cd.attribute(x, 1, LENGTHS)
    assert scores.is_contiguous() and scores.dtype == torch.float64 and scores.shape == x.shape[:2]
    attributions = (scores / x.shape[-1]).unsqueeze(-1).expand_as(x)  # input-shaped, same per-token sums

    def perturb(inputs: Tensor) -> Tuple[Tensor, Tensor]:
        noise = 0.01 * torch.randn(inputs.shape, dtype=inputs.dtype, generator=torch.Generator().manual_seed(0))
        return noise, inputs - noise

    score = infidelity(
        forward, perturb, x, attributions, target=1, additional_forward_args=LENGTHS, n_perturb_samples=2
    )
    assert score.shape == (3,) and bool(torch.isfinite(score).all())
    sensitivity = sensitivity_max(cd.attribute, x, target=1, additional_forward_args=LENGTHS, n_perturb_samples=2)
    assert sensitivity.shape == (3,) and bool(torch.isfinite(sensitivity).all())


# ----------------------------------------------------------------------------------------------------------------
# Refusals and validation
# ----------------------------------------------------------------------------------------------------------------


def test_division_by_a_decomposed_tensor_is_refused() -> None:
    rnn, fc = nn.LSTM(3, 4, batch_first=True), nn.Linear(4, 2)

    def divided(inputs: Tensor) -> Tensor:
        return fc(1.0 / rnn(inputs)[1][0][-1])

    with pytest.raises(TypeError, match="only division of a decomposed tensor by a constant"):
        ContextualDecomposition(divided).attribute(torch.randn(2, 3, 3), 0)


def test_a_bad_phrase_mask_is_refused_before_the_model_runs() -> None:
    torch.manual_seed(0)
    embedding = nn.Embedding(5, 3).double()
    rnn, fc = nn.LSTM(3, 3, batch_first=True).double(), nn.Linear(3, 2).double()
    layer_cd = LayerContextualDecomposition(lambda ids: fc(rnn(embedding(ids))[1][0][-1]), embedding)
    before = model_state(embedding)
    with pytest.raises(ValueError, match="phrase_mask"):
        layer_cd.decompose(torch.ones(2, 4, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool))
    assert_model_unchanged(before, embedding)


def test_arguments_are_validated() -> None:
    forward, _ = build("lstm-1-uni-last")
    x = _embeddings(11)
    cd = ContextualDecomposition(forward)
    with pytest.raises(
        ValueError, match="Expected `bias_product` to be one of .'phrase', 'reference', 'never'., but got 'all'"
    ):
        ContextualDecomposition(forward, "all")
    with pytest.raises(TypeError, match="Expected `phrase_mask` to be a bool tensor, but got torch.int64"):
        cd.decompose(x, torch.ones(3, STEPS, dtype=torch.long), LENGTHS)
    with pytest.raises(
        ValueError, match=r"Expected `phrase_mask` to have shape \(3, 6\) \(N, T\) or \(P, 3, 6\), but got \(3, 5\)"
    ):
        cd.decompose(x, torch.ones(3, 5, dtype=torch.bool), LENGTHS)
    with pytest.raises(
        ValueError, match="Expected `mask_a` and `mask_b` to hold the same number of phrases, but got 2 and 1"
    ):
        cd.interaction(x, torch.ones(2, 3, STEPS, dtype=torch.bool), torch.ones(3, STEPS, dtype=torch.bool), 0, LENGTHS)
    with pytest.raises(ValueError, match="Expected `feature_mask` to be constant over the dimensions after time"):
        cd.attribute(x, 0, LENGTHS, feature_mask=torch.arange(3).expand(3, STEPS, 3))
    with pytest.raises(ValueError, match=r"Expected `feature_mask` 0 to broadcast to the input's shape \(3, 6, 3\)"):
        cd.attribute(x, 0, LENGTHS, feature_mask=torch.zeros(2, STEPS, 1, dtype=torch.long))
    with pytest.raises(TypeError, match="Expected `feature_mask` to hold integer tensors, but got torch.float64"):
        cd.attribute(x, 0, LENGTHS, feature_mask=torch.zeros(3, STEPS, 1, dtype=torch.float64))
    words = torch.zeros(3, STEPS, dtype=torch.bool)
    words[:, 0], words[:, 2] = True, True
    with pytest.raises(ValueError, match=r"phrase 0 of example 0 covers positions \[0, 2\]"):
        ContextualDecomposition(forward, "reference").decompose(x, words, LENGTHS)


def test_textcnn_layer_variant_on_token_ids() -> None:
    torch.manual_seed(12)
    model = TextCNN(10, 3, 2, channels=(3, 2), kernel_sizes=(2, 2)).double()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6], [6, 7, 8, 0, 0, 0], [8, 9, 1, 2, 3, 0]])
    scores = LayerContextualDecomposition(model, model.embedding).attribute(ids, 1, LENGTHS, contrast=0)
    with torch.no_grad():
        expected = ContextualDecomposition(model.forward_embeddings).attribute(
            model.embedding(ids), 1, LENGTHS, contrast=0
        )
    assert (scores - expected).abs().max() < 1e-12
    assert torch.count_nonzero(scores[1, 3:]) == 0
