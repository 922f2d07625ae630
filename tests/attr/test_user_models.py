"""The identities of the decomposition methods (float64) on the model forms of Captum's and PyTorch's tutorials:
LRP with δ = 1 conserves the score (inputs + initial states), CD's β + γ + bias equals the logits, padding gets
exactly 0 and a sentence alone equals the same sentence in a padded batch. Their Captum contract (targets, an
unchanged model, threads, ...) is in ``test_contract.py``."""

from __future__ import annotations

from typing import Any, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from _user_models import BagClassifier, MaskedLoop, ProjectedLSTM, SeqFirstLSTM, flat_ids
from captum_text_ext import (
    LSTMLRP,
    ContextualDecomposition,
    LayerContextualDecomposition,
    LayerGradientLinearSurrogate,
    LayerLSTMLRP,
)
from captum_text_ext.decomposition.bags import BagLookup
from captum_text_ext.models import KimCNN
from captum_text_ext.models._pooling import pad_for_convolution

EXACT = 1e-12
VOCAB, CLASSES = 14, 3
IDS = torch.tensor([[2, 3, 4, 5, 6, 7], [8, 9, 10, 0, 0, 0], [11, 12, 13, 2, 3, 0]])
LENGTHS = torch.tensor([6, 3, 5])


def _seeded(make: Any, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return make().double().eval()


def _conserved(account: Any) -> float:
    return float((account.input_total + account.initial_state_total - account.scores).abs().max())


# --- Kim CNN: nn.Conv2d(1, F, (k, E)) over the embeddings as an image ------------------------------------------


class Conv1dTwin(nn.Module):
    """The Kim CNN written with ``nn.Conv1d(E, F, k)`` over ``(N, E, T)``: the same function, the well-tested rule."""

    def __init__(self, kim: KimCNN) -> None:
        super().__init__()
        self.kim = kim
        self.convs = nn.ModuleList()
        for conv in kim.convs:
            twin = nn.Conv1d(conv.kernel_size[1], conv.out_channels, conv.kernel_size[0]).double()
            with torch.no_grad():
                twin.weight.copy_(conv.weight[:, 0].transpose(1, 2))
                twin.bias.copy_(conv.bias)
            self.convs.append(twin)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        x, lengths = pad_for_convolution(x, lengths, self.kim.receptive_field)
        pooled = []
        for conv, k in zip(self.convs, self.kim.filter_sizes):
            features = self.kim._mask(F.relu(conv(x.transpose(1, 2))), lengths, k)
            pooled.append(F.max_pool1d(features, features.shape[2]).squeeze(2))
        return self.kim.fc(torch.cat(pooled, dim=1))


def _kim() -> KimCNN:
    return _seeded(lambda: KimCNN(VOCAB, 4, CLASSES, num_filters=3, filter_sizes=(2, 3, 4)))


@pytest.mark.parametrize("delta", [0.0, 1.0], ids=["LRP", "LRP_cons"])
def test_conv2d_rules_equal_the_conv1d_rules_on_the_kim_cnn(delta: float) -> None:
    kim = _kim()
    twin = Conv1dTwin(kim)
    x = kim.embedding(IDS).detach()
    assert (kim.forward_embeddings(x, LENGTHS) - twin(x, LENGTHS)).abs().max() < EXACT
    for target in range(CLASSES):
        got = LSTMLRP(kim.forward_embeddings, bias_factor=delta).attribute(x, target, LENGTHS)
        expected = LSTMLRP(twin, bias_factor=delta).attribute(x, target, LENGTHS)
        assert (got - expected).abs().max() < EXACT
    phrases = torch.rand(4, *IDS.shape, generator=torch.Generator().manual_seed(1)) > 0.5
    got = ContextualDecomposition(kim.forward_embeddings).decompose(x, phrases, LENGTHS, return_bias=True)
    expected = ContextualDecomposition(twin).decompose(x, phrases, LENGTHS, return_bias=True)
    assert all((a - b).abs().max() < EXACT for a, b in zip(got, expected))


def test_kim_cnn_conserves_and_decomposes_exactly() -> None:
    kim = _kim()
    ids, lengths = IDS[[0, 2]], LENGTHS[[0, 2]]  # at least the widest filter: no zero padding inside a window
    account = LayerLSTMLRP(kim, kim.embedding, bias_factor=1.0).decompose(ids, [0, 2], lengths)
    assert _conserved(account) < EXACT and account.initial_states == {}
    for n in range(2):  # each sentence alone, without the batch's padding
        alone = LayerLSTMLRP(kim, kim.embedding).attribute(ids[n : n + 1, : lengths[n]], 1, lengths[n : n + 1])
        batched = LayerLSTMLRP(kim, kim.embedding).attribute(ids, 1, lengths)
        assert (batched[n, : lengths[n]] - alone[0]).abs().max() < EXACT
        assert torch.count_nonzero(batched[n, lengths[n] :]) == 0
    cd = LayerContextualDecomposition(kim, kim.embedding)
    relevant, irrelevant, bias = cd.decompose(IDS, torch.rand(3, *IDS.shape) > 0.5, LENGTHS, return_bias=True)
    assert (relevant + irrelevant + bias - kim(IDS, LENGTHS)).abs().max() < EXACT


def test_any_conv2d_kernel_conserves_relevance() -> None:
    """Strides, padding, dilation and groups: the fan-in counts the taps that fall inside the input."""

    class Image(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: Tensor) -> Tensor:
            return self.fc(torch.tanh(self.conv(x)).mean(dim=(2, 3)))

    model = _seeded(Image)
    x = torch.randn(3, 2, 7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    account = LSTMLRP(model, bias_factor=1.0).decompose(x, [0, 1, 2])
    assert _conserved(account) < EXACT
    relevant, irrelevant, bias = ContextualDecomposition(model).decompose(
        x, torch.rand(2, 3, 2, generator=torch.Generator().manual_seed(3)) > 0.5, return_bias=True
    )
    assert (relevant + irrelevant + bias - model(x)).abs().max() < EXACT


# --- nn.EmbeddingBag --------------------------------------------------------------------------------------------

BAG_FORMS = [  # (mode, per_sample_weights, padding_idx); PyTorch takes per_sample_weights in mode "sum" only
    ("mean", False, None),
    ("mean", False, 0),
    ("sum", True, None),
    ("sum", True, 0),
    ("sum", False, 0),
    ("max", False, 0),
    ("max", False, None),
]


def _bag(mode: str, weighted: bool, padding_idx: Any, flat: bool = True) -> BagClassifier:
    return _seeded(lambda: BagClassifier(VOCAB, 4, CLASSES, mode=mode, flat=flat, weighted=weighted,
                                         padding_idx=padding_idx))


def _flat() -> Tuple[Tensor, Tensor]:
    """Flat ids with padding ids inside the bags (the padding index 0 is skipped by the bag)."""
    return flat_ids(IDS, torch.tensor([6, 5, 6])), torch.tensor([6, 5, 6])


@pytest.mark.parametrize("mode,weighted,padding_idx", BAG_FORMS)
def test_embedding_bag_rows_conserve_and_decompose(mode: str, weighted: bool, padding_idx: Any) -> None:
    model = _bag(mode, weighted, padding_idx)
    ids, lengths = _flat()
    lrp = LayerLSTMLRP(model, model.embedding, bias_factor=1.0)
    account = lrp.decompose(ids, [0, 1, 2], lengths)
    relevance, delta = lrp.attribute(ids, [0, 1, 2], lengths, return_convergence_delta=True)
    assert account.inputs.shape == (ids.shape[0], 4) and _conserved(account) < EXACT
    assert torch.equal(relevance, account.inputs) and (delta - account.initial_state_total).abs().max() < EXACT
    cd = LayerContextualDecomposition(model, model.embedding)
    phrases = torch.rand(5, ids.shape[0], generator=torch.Generator().manual_seed(4)) > 0.5
    relevant, irrelevant, bias = cd.decompose(ids, phrases, lengths, return_bias=True)
    assert relevant.shape == (5, 3, CLASSES)
    assert (relevant + irrelevant + bias - model(ids, lengths)).abs().max() < EXACT
    # a bag after a linear output: CD per flat id is gradient x input (both are exact for a linear map of the rows)
    scores = cd.attribute(ids, 1, lengths)
    times_input = LayerGradientLinearSurrogate(model, model.embedding, multiply_by_inputs=True).attribute(ids, 1, lengths)
    assert scores.shape == ids.shape and times_input.shape == (ids.shape[0], 4)
    assert (scores - times_input.sum(-1)).abs().max() < EXACT
    if padding_idx is not None:
        skipped = ids == padding_idx
        for result in (account.inputs, times_input, scores):
            assert torch.count_nonzero(result[skipped]) == 0
    if mode == "max":  # every output entry comes from one row: relevance sits at the arg-max rows only
        bags = torch.arange(3).repeat_interleave(lengths)
        for n in range(3):
            assert ((account.inputs[bags == n] != 0).sum(0) <= 1).all()


@pytest.mark.parametrize("mode", ["mean", "sum", "max"])
def test_a_bag_alone_equals_the_bag_in_a_batch_and_2d_ids_equal_flat_ids(mode: str) -> None:
    model = _bag(mode, False, 0)
    ids, lengths = _flat()
    batched = LayerLSTMLRP(model, model.embedding).attribute(ids, 1, lengths)
    cd = LayerContextualDecomposition(model, model.embedding).attribute(ids, 1, lengths)
    start = 0
    for n, length in enumerate(lengths.tolist()):
        alone = LayerLSTMLRP(model, model.embedding).attribute(ids[start : start + length], 1, lengths[n : n + 1])
        assert (batched[start : start + length] - alone).abs().max() < EXACT
        alone_cd = LayerContextualDecomposition(model, model.embedding).attribute(
            ids[start : start + length], 1, lengths[n : n + 1]
        )
        assert (cd[start : start + length] - alone_cd).abs().max() < EXACT
        start += length
    grid = _bag(mode, False, 0, flat=False)
    two_d = LayerLSTMLRP(grid, grid.embedding).attribute(IDS, 1)
    assert two_d.shape == (*IDS.shape, 4) and (two_d[IDS != 0] - batched[ids != 0]).abs().max() < EXACT


def test_embedding_bag_empty_bags_trailing_ids_and_refusals() -> None:
    bag = nn.EmbeddingBag(VOCAB, 3, mode="max", include_last_offset=True).double()
    ids, offsets = torch.tensor([4, 5, 6, 7, 8]), torch.tensor([0, 2, 2, 4])  # an empty bag; id 8 is after the end
    lookup = BagLookup.parse(bag, (ids, offsets), {}, bag(ids, offsets))
    assert lookup.bags == 3 and lookup.bag_of_row.tolist() == [0, 0, 2, 2, -1]
    assert torch.equal(lookup.combine(lookup.rows)[1], torch.zeros(3, dtype=torch.float64))
    renormed = nn.EmbeddingBag(VOCAB, 3, max_norm=1.0)
    with pytest.raises(TypeError, match="max_norm renormalizes its weight"):
        BagLookup.parse(renormed, (ids, offsets[:-1]), {}, torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"to be its looked-up rows combined per bag, but the two differ"):
        BagLookup.parse(bag, (ids, offsets), {}, torch.ones(3, 3, dtype=torch.float64))
    model = _bag("mean", False, 0)
    relevance = LayerLSTMLRP(model, model.embedding).attribute(*_flat()[:1], target=1, additional_forward_args=_flat()[1])
    with pytest.raises(ValueError, match="belongs to the bags its offsets say"):
        LayerLSTMLRP(model, model.embedding).compute_convergence_delta(relevance, torch.zeros(3))


# --- nn.LSTM(proj_size > 0) -------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("stabilizer", ["unit", "layer"])
def test_projected_lstm_conserves_and_decomposes_exactly(stabilizer: str) -> None:
    model = _seeded(lambda: ProjectedLSTM(VOCAB, 3, CLASSES))
    x = model.embedding(IDS).detach()
    account = LSTMLRP(model.forward_embeddings, bias_factor=1.0, cell_stabilizer=stabilizer).decompose(
        x, [0, 1, 2], LENGTHS
    )
    assert _conserved(account) < EXACT and torch.count_nonzero(account.inputs[1, 3:]) == 0
    assert sorted(account.initial_states) == ["lstm.c0", "lstm.h0"]
    assert account.initial_states["lstm.h0"].shape == (2, 3, 2)  # (directions, N, proj_size)
    cd = ContextualDecomposition(model.forward_embeddings)
    relevant, irrelevant, bias = cd.decompose(x, torch.rand(4, *IDS.shape) > 0.5, LENGTHS, return_bias=True)
    assert (relevant + irrelevant + bias - model.forward_embeddings(x, LENGTHS)).abs().max() < EXACT
    _, whole = cd.decompose(x, IDS != 0, LENGTHS)
    assert whole.abs().max() < EXACT  # the whole sentence is the phrase: nothing else contributes (h0 = 0)
    alone = cd.attribute(x[1:2, :3], 1, LENGTHS[1:2])
    assert (cd.attribute(x, 1, LENGTHS)[1, :3] - alone[0]).abs().max() < EXACT


# --- a layer output (T, N, E): self.emb(ids.t()) --------------------------------------------------------------


@pytest.mark.parametrize("square", [False, True], ids=["T-differs-from-N", "T-equals-N"])
def test_seq_first_layer_account_is_per_example(square: bool) -> None:
    model = _seeded(lambda: SeqFirstLSTM(VOCAB, 3, CLASSES))
    ids, lengths = (IDS[:, :3], torch.tensor([3, 3, 3])) if square else (IDS, LENGTHS)
    lrp = LayerLSTMLRP(model, model.embedding, bias_factor=1.0)
    account = lrp.decompose(ids, [0, 1, 2], lengths)
    relevance, delta = lrp.attribute(ids, [0, 1, 2], lengths, return_convergence_delta=True)
    assert relevance.shape == (ids.shape[1], 3, 3) and _conserved(account) < EXACT
    assert (delta - account.initial_state_total).abs().max() < EXACT
    for n in range(3):
        alone = lrp.decompose(ids[n : n + 1], n, lengths[n : n + 1])
        assert abs(float(account.input_total[n] - alone.input_total[0])) < EXACT
        assert (relevance[:, n] - alone.inputs[:, 0]).abs().max() < EXACT
    cd = LayerContextualDecomposition(model, model.embedding)
    scores = cd.attribute(ids, 1, lengths)
    assert scores.shape == ids.shape
    for n in range(3):
        assert (scores[n] - cd.attribute(ids[n : n + 1], 1, lengths[n : n + 1])[0]).abs().max() < EXACT
    relevant, irrelevant, bias = cd.decompose(ids, torch.rand(2, *ids.shape) > 0.5, lengths, return_bias=True)
    assert (relevant + irrelevant + bias - model(ids, lengths)).abs().max() < EXACT


def test_seq_first_layouts_that_cannot_be_told_apart_are_refused() -> None:
    model = _seeded(lambda: SeqFirstLSTM(VOCAB, 3, CLASSES))
    ids, lengths = IDS[:, :3], torch.tensor([3, 3, 3])
    relevance = LayerLSTMLRP(model, model.embedding).attribute(ids, 1, lengths)
    with pytest.raises(ValueError, match=r"dimensions \[0, 1, 2\] all have the batch size"):
        LayerLSTMLRP(model, model.embedding).compute_convergence_delta(relevance, torch.zeros(3))
    symmetric = torch.tensor([[2, 3, 4], [3, 5, 6], [4, 6, 7]])
    with pytest.raises(ValueError, match=r"is \(N, T, ...\) or \(T, N, ...\), but N = T = 3"):
        LayerContextualDecomposition(model, model.embedding).attribute(symmetric, 1, lengths)


# --- a cell loop masked by multiplication -----------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_masked_cell_loop_is_exact_at_padding_and_equals_the_where_form(cell: str) -> None:
    model = _seeded(lambda: MaskedLoop(VOCAB, 3, CLASSES, cell))
    where = _seeded(lambda: MaskedLoop(VOCAB, 3, CLASSES, cell, where=True))
    x = model.embedding(IDS).detach()
    for delta in (0.0, 1.0):
        lrp = LSTMLRP(model.forward_embeddings, bias_factor=delta)
        account = lrp.decompose(x, [0, 1, 2], LENGTHS)
        reference = LSTMLRP(where.forward_embeddings, bias_factor=delta).decompose(x, [0, 1, 2], LENGTHS)
        assert torch.equal(account.inputs, reference.inputs)  # a product with a 0/1 mask is a selection
        for n, length in enumerate(LENGTHS.tolist()):
            assert torch.count_nonzero(account.inputs[n, length:]) == 0
            alone = lrp.attribute(x[n : n + 1, :length], n, LENGTHS[n : n + 1])
            assert (account.inputs[n, :length] - alone[0]).abs().max() < 1e-6
        if delta == 1.0:
            assert _conserved(account) < EXACT
    cd = ContextualDecomposition(model.forward_embeddings)
    scores = cd.attribute(x, 1, LENGTHS)
    assert torch.count_nonzero(scores[1, 3:]) == 0
    assert (scores[1, :3] - cd.attribute(x[1:2, :3], 1, LENGTHS[1:2])[0]).abs().max() < 1e-6
    relevant, irrelevant, bias = cd.decompose(x, torch.rand(3, *IDS.shape) > 0.5, LENGTHS, return_bias=True)
    assert (relevant + irrelevant + bias - model.forward_embeddings(x, LENGTHS)).abs().max() < EXACT
