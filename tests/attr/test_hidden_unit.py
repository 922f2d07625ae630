"""HiddenUnitSaliency and HiddenUnitOptimization (Yuan et al., 2019) against straightforward implementations of the
paper's equations, on small float64 CNNs."""

from __future__ import annotations

import itertools
from typing import Callable, List, Optional, Sequence

import pytest
import torch
from torch import Tensor, nn

from captum_text_ext import HiddenUnitOptimization, HiddenUnitSaliency, nearest_words
from captum_text_ext.attr import stack_receptive_fields
from captum_text_ext.datasets import Vocabulary
from captum_text_ext.models import KimCNN, TextCNN
from captum_text_ext.models._pooling import pad_for_convolution

VOCAB = 14
WORDS = ["<pad>", "<unk>"] + [f"w{i}" for i in range(VOCAB - 2)]


class StridedCNN(nn.Module):
    """A user's CNN: padding, pooling with stride, dilation; token ids read batch-first or time-first."""

    def __init__(self, time_first: bool = False) -> None:
        super().__init__()
        self.time_first = time_first
        self.embedding = nn.Embedding(VOCAB, 3, padding_idx=0)
        self.conv1 = nn.Conv1d(3, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool1d(2)
        self.conv2 = nn.Conv1d(4, 5, 2, dilation=2)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(5, 3)

    def layer1(self, x: Tensor) -> Tensor:
        """(N, E, T) -> relu1 output."""
        return self.relu1(self.conv1(x))

    def head(self, a1: Tensor) -> Tensor:
        return self.fc(self.relu2(self.conv2(self.pool(a1))).amax(-1))

    def forward(self, ids: Tensor) -> Tensor:
        if self.time_first:
            x = self.embedding(ids.t()).permute(1, 2, 0)
        else:
            x = self.embedding(ids).transpose(1, 2)
        return self.head(self.layer1(x))


def _strided(time_first: bool = False) -> StridedCNN:
    torch.manual_seed(0)
    return StridedCNN(time_first).double().eval()


def _textcnn() -> TextCNN:
    torch.manual_seed(0)
    return TextCNN(VOCAB, 4, 3, channels=(5, 4), kernel_sizes=(3, 2)).double().eval()


def _kim() -> KimCNN:
    torch.manual_seed(0)
    return KimCNN(VOCAB, 4, 3, num_filters=5, filter_sizes=(2, 3, 4)).double().eval()


class WideKim(nn.Module):
    """A Kim CNN over the transposed image :math:`(N, 1, E, T)`: ``nn.Conv2d(1, F, (E, k))``, outputs
    :math:`(N, F, 1, L)`, its locations in dimension 3."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 4, padding_idx=0)
        self.conv = nn.Conv2d(1, 5, (4, 3))
        self.fc = nn.Linear(5, 3)

    def forward(self, ids: Tensor) -> Tensor:
        features = torch.relu(self.conv(self.embedding(ids).transpose(1, 2).unsqueeze(1))).squeeze(2)
        return self.fc(features.amax(-1))


def _ids(lengths: Sequence[int], seed: int = 1) -> Tensor:
    ids = torch.randint(2, VOCAB, (len(lengths), max(lengths)), generator=torch.Generator().manual_seed(seed))
    return ids.masked_fill(torch.arange(max(lengths)) >= torch.tensor(lengths).unsqueeze(1), 0)


def _lengths(ids: Tensor) -> Tensor:
    return (ids != 0).sum(1)


# --- Eq. 1–3 ------------------------------------------------------------------------------------------------------


def _eq3_textcnn(model: TextCNN, ids: Tensor, lengths: Tensor, classes: Tensor) -> Tensor:
    """Score_c(X)_i = w(A)_i . a_i for the first ReLU layer, by a hand-written forward from a leaf A."""
    x = model.embedding(ids).masked_fill((torch.arange(ids.shape[1]) >= lengths.unsqueeze(1)).unsqueeze(-1), 0)
    x = torch.nn.functional.pad(x, (0, 0, 0, max(0, model.receptive_field - ids.shape[1]))).transpose(1, 2)
    a1 = torch.relu(model.conv_layers[0](x)).detach().requires_grad_(True)
    a2 = torch.relu(model.conv_layers[1](a1))
    keep = torch.arange(a2.shape[-1]) <= (lengths.clamp(min=model.receptive_field) - model.receptive_field).unsqueeze(1)
    logits = model.output(a2.masked_fill(~keep.unsqueeze(1), -torch.inf).amax(-1))
    (grad,) = torch.autograd.grad(logits.gather(1, classes.unsqueeze(1)).sum(), a1)
    return (grad * a1).sum(1)


def _eq3_kim(model: KimCNN, ids: Tensor, lengths: Tensor, classes: Tensor, j: int) -> Tensor:
    """Score_c(X)_i = w(A)_i . a_i for convolution ``j`` of a Kim CNN, by a hand-written forward from a leaf A."""
    x, lengths = pad_for_convolution(model.embedding(ids), lengths, model.receptive_field)
    image = x.unsqueeze(1)
    leaf = model.convs[j](image).detach().requires_grad_(True)  # (N, F, L, 1)
    pooled = []
    for k, (conv, size) in enumerate(zip(model.convs, model.filter_sizes)):
        features = torch.relu(leaf if k == j else conv(image)).squeeze(3)
        keep = torch.arange(features.shape[2]) < (lengths.clamp(min=model.receptive_field) - size + 1).unsqueeze(1)
        masked = features.masked_fill(~keep.unsqueeze(1), -torch.inf)
        pooled.append(torch.nn.functional.max_pool1d(masked, masked.shape[2]).squeeze(2))  # ties: one winner
    logits = model.fc(torch.cat(pooled, dim=1))
    (grad,) = torch.autograd.grad(logits.gather(1, classes.unsqueeze(1)).sum(), leaf)
    return (grad * leaf).sum(dim=(1, 3))


@pytest.mark.parametrize("j", [0, 1, 2])
def test_saliency_equals_autograd_eq3_kim_cnn(j: int) -> None:
    """Each convolution of the Kim CNN's ModuleList is a layer: (N, F, L, 1), its locations in dimension 2."""
    model = _kim()
    ids = _ids([7, 3, 5, 6])
    lengths = _lengths(ids)
    saliency = HiddenUnitSaliency(model, model.convs[j])
    result = saliency.attribute(ids, additional_forward_args=lengths)
    expected = _eq3_kim(model, ids, lengths, model(ids, lengths).argmax(1), j)
    assert result.shape == expected.shape == (4, 7 - model.filter_sizes[j] + 1)
    assert (result - expected).abs().max() <= 1e-10
    assert saliency.stack == [model.convs[j]] and saliency.axis == 0
    size = model.filter_sizes[j]
    assert saliency.receptive_fields(7).tolist() == [[i, i + size] for i in range(8 - size)]


def test_four_dimensional_layers_find_or_are_told_their_locations() -> None:
    wide = WideKim().double().eval()
    ids = _ids([7, 6])
    saliency = HiddenUnitSaliency(wide, wide.conv)
    assert saliency.attribute(ids).shape == (2, 5) and saliency.axis == 1  # (N, F, 1, L): dimension 3
    assert saliency.receptive_fields(7).tolist() == [[i, i + 3] for i in range(5)]
    assert torch.equal(HiddenUnitSaliency(wide, wide.conv, location_dim=3).attribute(ids), saliency.attribute(ids))
    kim = _kim()
    single = _ids([4])  # as short as the widest filter: one location, (1, F, 1, 1)
    with pytest.raises(ValueError, match="both spatial dimensions have size 1.*pass `location_dim=2`"):
        HiddenUnitSaliency(kim, kim.convs[2]).attribute(single)
    assert HiddenUnitSaliency(kim, kim.convs[2], location_dim=2).attribute(single).shape == (1, 1)
    with pytest.raises(ValueError, match=r"with its locations in dimension 3 \(`location_dim`\)"):
        HiddenUnitSaliency(kim, kim.convs[0], location_dim=3).attribute(single)
    with pytest.raises(ValueError, match="Expected `location_dim` to be None, 2 or 3"):
        HiddenUnitSaliency(kim, kim.convs[0], location_dim=1)


def _eq3_strided(model: StridedCNN, ids: Tensor, classes: Tensor) -> Tensor:
    a1 = model.layer1(model.embedding(ids).transpose(1, 2)).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.head(a1).gather(1, classes.unsqueeze(1)).sum(), a1)
    return (grad * a1).sum(1)


@pytest.mark.parametrize("target", [None, 2, [0, 1, 2, 1], torch.tensor([2, 2, 0, 1])], ids=["none", "int", "list", "tensor"])
def test_saliency_equals_autograd_eq3_textcnn(target: object) -> None:
    model = _textcnn()
    ids = _ids([7, 3, 5, 1])
    lengths = _lengths(ids)
    saliency = HiddenUnitSaliency(model, model.activations[0]).attribute(ids, target, additional_forward_args=lengths)
    logits = model(ids, lengths)
    if target is None:
        classes = logits.argmax(1)
    else:
        classes = torch.as_tensor(target).expand(4) if isinstance(target, int) else torch.as_tensor(target)
    expected = _eq3_textcnn(model, ids, lengths, classes)
    assert saliency.shape == expected.shape == (4, 5)
    assert (saliency - expected).abs().max() <= 1e-10


@pytest.mark.parametrize("time_first", [False, True])
def test_saliency_equals_autograd_eq3_user_cnn_and_is_the_same_before_the_relu(time_first: bool) -> None:
    model = _strided(time_first)
    ids = _ids([9, 6, 8])
    classes = model(ids).argmax(1)
    expected = _eq3_strided(model, ids, classes)
    after = HiddenUnitSaliency(model, model.relu1).attribute(ids)
    before = HiddenUnitSaliency(model, model.conv1).attribute(ids)
    assert (after - expected).abs().max() <= 1e-10
    assert (before - expected).abs().max() <= 1e-10


def test_saliency_channels_last_layer() -> None:
    class ChannelsLast(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x.transpose(1, 2)

    model = _strided()
    ids = _ids([9, 6, 8])
    model.relu1.register_forward_hook(lambda m, a, out: None)  # a user's own hook stays
    wrapped = nn.Sequential()
    last = ChannelsLast()
    wrapped.inner = model

    def forward(ids: Tensor) -> Tensor:
        x = model.embedding(ids).transpose(1, 2)
        return model.head(last(model.layer1(x)).transpose(1, 2))

    saliency = HiddenUnitSaliency(forward, last, stack=[model.conv1], channel_dim=2).attribute(ids)
    assert (saliency - _eq3_strided(model, ids, model(ids).argmax(1))).abs().max() <= 1e-10
    assert len(model.relu1._forward_hooks) == 1


# --- receptive fields -----------------------------------------------------------------------------------------------


def _brute_force_fields(stack: Callable[[Tensor], Tensor], channels: int, seq_len: int) -> List[List[int]]:
    """Put NaN on one input position at a time and see which output locations it reaches; a field is the span of
    the positions that reach a location (dilation leaves holes in it)."""
    reached = []
    for position in range(seq_len):
        x = torch.randn(1, channels, seq_len, dtype=torch.float64, generator=torch.Generator().manual_seed(position))
        x[0, :, position] = torch.nan
        reached.append(torch.isnan(stack(x)[0]).any(0))
    hits = torch.stack(reached, dim=1)  # (L, T)
    fields = []
    for row in hits:
        positions = torch.nonzero(row).flatten().tolist()
        fields.append([positions[0], positions[-1] + 1])
    return fields


STACKS = {
    "valid": lambda: [nn.Conv1d(2, 3, 5), nn.Conv1d(3, 2, 5)],
    "stride-dilation-padding": lambda: [nn.Conv1d(2, 3, 3, stride=2, padding=2), nn.Conv1d(3, 2, 3, dilation=3)],
    "pooling": lambda: [nn.Conv1d(2, 3, 3, padding=1), nn.MaxPool1d(3, stride=2, padding=1), nn.AvgPool1d(2)],
    "same-padding": lambda: [nn.Conv1d(2, 3, 4, padding="same", dilation=2), nn.MaxPool1d(2, dilation=2)],
}


@pytest.mark.parametrize("name", sorted(STACKS))
@pytest.mark.parametrize("seq_len", [11, 20])
def test_receptive_fields_equal_brute_force(name: str, seq_len: int) -> None:
    torch.manual_seed(0)
    modules = STACKS[name]()
    stack = nn.Sequential(*modules).double()
    with torch.no_grad():
        expected = _brute_force_fields(stack, 2, seq_len)
    assert stack_receptive_fields(modules, seq_len).tolist() == expected


def test_receptive_fields_of_a_model_are_found_from_the_stack_that_ran() -> None:
    model = _strided()
    saliency = HiddenUnitSaliency(model, model.relu1)
    with pytest.raises(ValueError, match="Expected the stack to be known"):
        saliency.receptive_fields(9)
    saliency.attribute(_ids([9]))
    assert saliency.stack == [model.conv1]
    deeper = HiddenUnitSaliency(model, model.relu2)
    deeper.attribute(_ids([9]))
    assert deeper.stack == [model.conv1, model.pool, model.conv2]
    with torch.no_grad():
        expected = _brute_force_fields(lambda x: model.conv2(model.pool(model.layer1(x))), 3, 12)
    assert deeper.receptive_fields(12).tolist() == expected


def test_parallel_branches_are_not_part_of_the_stack() -> None:
    torch.manual_seed(0)
    model = TextCNN(VOCAB, 4, 2, channels=(3, 3), kernel_sizes=(2, 4), mode="parallel").double().eval()
    saliency = HiddenUnitSaliency(model, model.conv_layers[1])
    assert saliency.attribute(_ids([6, 4])).shape == (2, 3)
    assert saliency.stack == [model.conv_layers[1]]


def test_a_stack_that_is_not_a_chain_raises() -> None:
    model = _strided()
    with pytest.raises(ValueError, match="form a chain"):
        HiddenUnitSaliency(model, model.relu2, stack=[model.conv1, model.conv2]).attribute(_ids([9]))
    with pytest.raises(ValueError, match="padding_mode='zeros'"):
        stack_receptive_fields([nn.Conv1d(2, 2, 3, padding=1, padding_mode="circular")], 8)


# --- Eq. 5–8 --------------------------------------------------------------------------------------------------------


def _hunt(model: nn.Module, layer: nn.Module, **kwargs: object) -> HiddenUnitOptimization:
    options = dict(lambda1=0.004, lambda2=0.02, lr=0.02, max_steps=150, tol=1e-6, window=10)
    options.update(kwargs)
    return HiddenUnitOptimization(model, layer, model.embedding, WORDS, **options)  # type: ignore[arg-type]


def _eq6(model: StridedCNN, ids: Tensor, result: object, b: int, lambda1: float, lambda2: float) -> float:
    """The objective of one item from its returned vectors, written out: X0, a', Eq. 6 and Eq. 7 with loops."""
    n, location = int(result.example[b]), int(result.location[b])  # type: ignore[attr-defined]
    x0 = model.embedding(ids[n : n + 1]).detach().clone()
    columns = []
    for r, position in enumerate(result.columns[b].tolist()):  # type: ignore[attr-defined]
        if result.column_mask[b, r]:  # type: ignore[attr-defined]
            x0[0, position] = result.vectors[b, r]  # type: ignore[attr-defined]
            columns.append(result.vectors[b, r])  # type: ignore[attr-defined]
    a = model.layer1(model.embedding(ids[n : n + 1]).transpose(1, 2))[0, :, location]
    a0 = model.layer1(x0.transpose(1, 2))[0, :, location]
    norm = sum(float((c * c).sum()) for c in columns)
    sim = sum(float(torch.cosine_similarity(ci, cj, dim=0)) for ci, cj in itertools.product(columns, columns))
    return float((a @ a0).detach()) - lambda1 * norm + lambda2 * sim / len(columns)


def test_objective_trace_matches_a_recomputation_and_increases() -> None:
    model = _strided()
    ids = _ids([9, 4, 7])
    result = _hunt(model, model.relu1).optimize(ids, n_locations=2)
    assert len(result.example) == 6
    for b in range(6):
        expected = _eq6(model, ids, result, b, 0.004, 0.02)
        assert abs(float(result.objective[b]) - expected) <= 1e-10
        assert float(result.trace[b, result.steps[b]]) == float(result.objective[b])
        assert torch.isnan(result.trace[b, result.steps[b] + 1 :]).all()
    steps = result.trace[:, 1:] - result.trace[:, :-1]
    assert float(steps[~torch.isnan(steps)].mean()) > 0
    assert (result.objective > result.trace[:, 0]).all()


def test_selected_locations_are_the_most_salient_that_read_a_token() -> None:
    model = _strided()
    ids = _ids([9, 3])
    result = _hunt(model, model.relu1, max_steps=3).optimize(ids, n_locations=3)
    for n in range(2):
        items = result.items_of(n)
        assert result.rank[items].tolist() == list(range(len(items)))
        valid = [i for i in range(result.saliency.shape[1]) if int(result.receptive_fields[i, 1]) <= _lengths(ids)[n]]
        best = sorted((float(result.saliency[n, i]) for i in valid), reverse=True)[: len(items)]
        assert [float(result.saliency[n, i]) for i in result.location[items]] == best  # ties in any order
        assert set(result.location[items].tolist()) <= set(valid) and len(items) == min(3, len(valid))
        for b in items:
            on_tokens = (ids[n, result.columns[b]] != 0) & (result.columns[b] < result.receptive_fields[result.location[b], 1])
            assert result.column_mask[b].tolist() == on_tokens.tolist()
    weights = result.column_mask.double().unsqueeze(-1)
    assert torch.allclose(result.x_overall, (result.vectors * weights).sum(1) / weights.sum(1))


def _similarity(result: object) -> float:
    """Mean Eq. 7 over the items."""
    values = []
    for b in range(len(result.example)):  # type: ignore[attr-defined]
        columns = result.vectors[b][result.column_mask[b]]  # type: ignore[attr-defined]
        unit = torch.nn.functional.normalize(columns, dim=1)
        values.append(float((unit @ unit.t()).sum()) / len(columns))
    return sum(values) / len(values)


def test_similarity_term_makes_the_columns_more_similar() -> None:
    model = _textcnn()
    ids = _ids([7, 6, 8])
    plain = _hunt(model, model.activations[0], lambda2=0.0).optimize(ids, additional_forward_args=_lengths(ids))
    similar = _hunt(model, model.activations[0], lambda2=0.5).optimize(ids, additional_forward_args=_lengths(ids))
    assert torch.equal(plain.location, similar.location)
    assert _similarity(similar) > _similarity(plain) + 0.05


@pytest.mark.parametrize("case", ["textcnn-cropped", "kim-cnn", "strided", "strided-time-first"])
def test_batched_equals_each_example_and_location_alone(case: str) -> None:
    padded = case in ("textcnn-cropped", "kim-cnn")
    model: nn.Module = {"textcnn-cropped": _textcnn, "kim-cnn": _kim}[case]() if padded else _strided(
        time_first=case.endswith("time-first")
    )
    layer = {"textcnn-cropped": lambda: model.activations[0], "kim-cnn": lambda: model.convs[1]}[case]() if padded \
        else model.relu1
    # StridedCNN reads padding: no padding; the Kim CNN's seed keeps the top saliencies free of ties (its max pooling
    # leaves many locations at exactly 0, and tied locations may be ranked in any order)
    ids = _ids([8, 3, 6] if padded else [9, 9, 9], seed=6 if case == "kim-cnn" else 1)
    args = (lambda x: _lengths(x)) if padded else (lambda x: None)
    hunt = _hunt(model, layer, max_steps=60)
    together = hunt.optimize(ids, additional_forward_args=args(ids), n_locations=2)
    for n in range(3):
        alone_ids = ids[n : n + 1, : int(_lengths(ids)[n])]
        alone = hunt.optimize(alone_ids, additional_forward_args=args(alone_ids), n_locations=2)
        items = together.items_of(n)
        assert together.location[items].tolist() == alone.location.tolist()
        assert (together.vectors[items] - alone.vectors).abs().max() <= 1e-6
        assert (together.trace[items] - alone.trace).nan_to_num().abs().max() <= 1e-6
        assert together.neighbors.words[items[0]] == alone.neighbors.words[0]
        top = hunt.optimize(alone_ids, additional_forward_args=args(alone_ids), n_locations=1)
        assert (top.vectors - alone.vectors[:1]).abs().max() <= 1e-6


class GluedCNN(StridedCNN):
    """A CNN whose forward scales the embeddings before the (unpadded) convolution: X0 must pass through the glue."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(3, 4, 3)

    def layer1(self, x: Tensor) -> Tensor:
        return self.relu1(self.conv1(2 * x))

    def forward(self, ids: Tensor) -> Tensor:
        return self.head(self.layer1(self.embedding(ids).transpose(1, 2)))


@pytest.mark.parametrize("input_length", [None, 12, "kim-cnn", "wide-kim"])
def test_columns_go_in_at_the_first_module_only_when_it_reads_the_embeddings_unchanged(
    monkeypatch: pytest.MonkeyPatch, input_length: object
) -> None:
    torch.manual_seed(0)
    if input_length == "kim-cnn":
        model: nn.Module = _kim()
        layer: nn.Module = model.convs[1]
    elif input_length == "wide-kim":
        model = WideKim().double().eval()
        layer = model.conv
    else:
        assert input_length is None or isinstance(input_length, int)
        model = TextCNN(VOCAB, 4, 3, channels=(5, 4), kernel_sizes=(3, 2), input_length=input_length).double().eval()
        layer = model.activations[0]
    ids = _ids([8, 3, 6])
    hunt = _hunt(model, layer, max_steps=60)
    args = _lengths(ids) if not isinstance(model, WideKim) else None
    checks: List[bool] = []
    original = HiddenUnitOptimization._reads_embeddings_unchanged

    def recording(self, *args):  # type: ignore[no-untyped-def]
        checks.append(original(self, *args))
        return checks[-1]

    monkeypatch.setattr(HiddenUnitOptimization, "_reads_embeddings_unchanged", recording)
    cropped = hunt.optimize(ids, additional_forward_args=args, n_locations=2)
    monkeypatch.setattr(HiddenUnitOptimization, "_reads_embeddings_unchanged", lambda self, *args: False)
    replaced = hunt.optimize(ids, additional_forward_args=args, n_locations=2)
    assert checks == [True]
    assert (cropped.vectors - replaced.vectors).abs().max() <= 1e-10
    assert (cropped.trace - replaced.trace).nan_to_num().abs().max() <= 1e-10
    assert torch.equal(cropped.steps, replaced.steps)

    monkeypatch.setattr(HiddenUnitOptimization, "_reads_embeddings_unchanged", recording)
    torch.manual_seed(0)
    glued = GluedCNN().double().eval()
    ids = _ids([9, 9, 9])
    result = _hunt(glued, glued.relu1).optimize(ids, n_locations=2)
    assert checks == [True, False]
    for b in range(len(result.example)):
        assert abs(float(result.objective[b]) - _eq6(glued, ids, result, b, 0.004, 0.02)) <= 1e-10


def test_start_depends_on_seed_and_rank_only() -> None:
    model = _strided()
    first, second = _hunt(model, model.relu1, seed=3), _hunt(model, model.relu1, seed=3)
    first.optimize(_ids([9]), n_locations=1)
    second.optimize(_ids([7]), n_locations=1)
    assert torch.equal(first.start_vectors(1), second.start_vectors(1))
    assert not torch.equal(first.start_vectors(0), first.start_vectors(1))
    other = _hunt(model, model.relu1, seed=4, stack=[model.conv1])
    assert not torch.equal(first.start_vectors(0), other.start_vectors(0))


def test_nearest_words_by_cosine_without_special_tokens() -> None:
    torch.manual_seed(0)
    weight = torch.randn(VOCAB, 4, dtype=torch.float64)
    vectors = torch.randn(3, 4, dtype=torch.float64)
    vocabulary = Vocabulary(WORDS)
    found = nearest_words(vectors, weight, vocabulary, k=4)
    for row, ids, scores in zip(vectors, found.ids, found.scores):
        cosine = [float(torch.cosine_similarity(row, w, dim=0)) for w in weight]
        expected = sorted(range(2, VOCAB), key=lambda i: -cosine[i])[:4]
        assert ids.tolist() == expected
        assert torch.allclose(scores, torch.tensor([cosine[i] for i in expected], dtype=torch.float64))
    assert found.words[0] == [WORDS[i] for i in found.ids[0].tolist()]
    with pytest.raises(ValueError, match="Expected `k` in"):
        nearest_words(vectors, weight, vocabulary, k=VOCAB - 1)


class _OwnVocabulary:
    """A user's vocabulary class: only the two attributes the methods read."""

    def __init__(self, itos: Sequence[str], special: Sequence[int]) -> None:
        self.itos = list(itos)
        self.special_indices = list(special)


def test_nearest_words_reads_any_vocabulary_with_itos_and_special_indices() -> None:
    torch.manual_seed(0)
    weight = torch.randn(VOCAB, 4, dtype=torch.float64)
    vectors = weight[[5, 7]] * 2.0  # each vector's nearest word is its own row
    own = nearest_words(vectors, weight, _OwnVocabulary(WORDS, [0, 5]), k=1)
    assert own.ids[1].tolist() == [7] and own.words[1] == [WORDS[7]]
    assert own.ids[0].tolist() != [5]  # a special id of the user's class is excluded as for `Vocabulary`
    plain = nearest_words(vectors, weight, WORDS, k=1)  # a plain sequence has no special ids
    assert plain.ids.flatten().tolist() == [5, 7]


def test_matching_rate_feeds_the_neighbours_of_the_top_locations_in_order() -> None:
    model = _textcnn()
    ids = _ids([7, 6, 8, 5])
    hunt = _hunt(model, model.activations[0], max_steps=20)
    rate = hunt.matching_rate(ids, n_locations=2, n_neighbors=3, forward_args=_lengths, batch_size=3)
    result = hunt.optimize(ids, additional_forward_args=_lengths(ids), n_locations=2, n_neighbors=3)
    expected: List[Optional[int]] = []
    for n in range(4):
        words = [w for b in result.items_of(n) for w in result.neighbors.ids[b].tolist()]
        assert rate.interpretations[n] == words and len(words) == 6
        interpretation = torch.tensor([words])
        expected.append(int(model(interpretation, _lengths(interpretation)).argmax(1)))
    assert rate.interpretation_classes.tolist() == expected
    assert rate.matches.tolist() == [e == int(c) for e, c in zip(expected, model(ids, _lengths(ids)).argmax(1))]
    assert rate.rate == float(rate.matches.double().mean())


def test_bad_arguments_raise_clear_errors() -> None:
    model = _strided()
    with pytest.raises(TypeError, match="nn.Embedding"):
        HiddenUnitOptimization(model, model.relu1, model.conv1, WORDS, 0.1, 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vocabulary of 14 words"):
        HiddenUnitOptimization(model, model.relu1, model.embedding, WORDS[:5], 0.1, 0.1)
    with pytest.raises(ValueError, match="return a floating-point tensor"):
        HiddenUnitSaliency(model, model.fc, stack=[model.conv1]).attribute(_ids([9]))
