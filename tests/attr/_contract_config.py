"""The one config list of the Captum contract suite (``test_contract.py``), in the manner of Captum's
``captum/testing/attr/helpers/test_config.py``: every attribution class of the package is one :class:`Case`, and a
new class joins every contract item that applies to it by adding one entry to :data:`CASES`.

A case names the class, the tiny float64 :class:`Family` it runs on (a model, its layer and a padded batch with
lengths), how to build it, the shape it returns, and what it does where Captum leaves a choice (what ``target=None``
means, whether NoiseTunnel's noise makes sense on its inputs). Items that do not apply to a class are not generated
for it (:func:`cases`), never skipped.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple, Type, Union

import pytest
import torch
from captum.attr import Attribution, GradientAttribution, LayerAttribution
from torch import Tensor, nn

from captum_text_ext import (
    LSTMLRP,
    ContextualDecomposition,
    GradientLinearSurrogate,
    HiddenUnitOptimization,
    HiddenUnitSaliency,
    LayerContextualDecomposition,
    LayerGradientLinearSurrogate,
    LayerLSTMLRP,
    LayerTransformerLRP,
    TransformerLRP,
)
from _token_transformers import EncoderTokenClassifier, HFTokenClassifier, LSTMSelfAttentionClassifier
from _user_models import BagClassifier, MaskedLoop, ProjectedLSTM, SeqFirstLSTM, flat_ids
from captum_text_ext.models import KimCNN, LSTMClassifier, TextCNN

VOCAB = 12
WORDS = ["<pad>", "<unk>"] + [f"w{i}" for i in range(2, VOCAB)]
CLASSES = 3
IDS = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 0, 0, 0], [8, 9, 10, 11, 0]])
LENGTHS = torch.tensor([5, 2, 4])

Head = Callable[[Tensor], Tensor]


class Headed(nn.Module):
    """The user's model with an optional ``head`` on its output (a single column, a grid, an op without a rule, an
    error); it takes the lengths as a required argument, so a method that drops ``additional_forward_args`` fails."""

    def __init__(self, model: Any, takes_embeddings: bool, head: Optional[Head] = None) -> None:
        super().__init__()
        self.model, self.takes_embeddings, self.head = model, takes_embeddings, head

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        output = self.model.forward_embeddings(x, lengths) if self.takes_embeddings else self.model(x, lengths)
        return output if self.head is None else self.head(output)


class Pair(nn.Module):
    """Two embedding inputs of different lengths: an LSTM reads one, a GRU the other."""

    def __init__(self) -> None:
        super().__init__()
        self.left, self.right = nn.LSTM(3, 2, batch_first=True), nn.GRU(3, 2, batch_first=True)
        self.fc = nn.Linear(4, CLASSES)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.fc(torch.cat([self.left(a)[1][0][-1], self.right(b)[1][-1]], dim=-1))


@dataclasses.dataclass(frozen=True)
class Subject:
    """One model, the layer a layer method works at, and the batch: ``inputs`` and ``lengths`` (the additional
    forward argument); ``flat``: the inputs are the examples' token ids concatenated (an ``nn.EmbeddingBag`` with
    offsets), one example per length."""

    model: Any
    layer: nn.Module
    inputs: Union[Tensor, Tuple[Tensor, ...]]
    lengths: Optional[Tensor]
    takes_embeddings: bool
    flat: bool = False

    def example(self, n: int) -> Tuple[Tensor, Tensor]:
        """The inputs and lengths of example ``n`` alone."""
        assert isinstance(self.inputs, Tensor) and self.lengths is not None
        if not self.flat:
            return self.inputs[n : n + 1], self.lengths[n : n + 1]
        start = int(self.lengths[:n].sum())
        return self.inputs[start : start + int(self.lengths[n])], self.lengths[n : n + 1]

    def forward(self, head: Optional[Head] = None) -> nn.Module:
        """What a method wraps: the model (with ``head`` on its output)."""
        if isinstance(self.model, Pair):
            return self.model
        return Headed(self.model, self.takes_embeddings, head)

    def tokens(self, example: int) -> List[str]:
        return [WORDS[int(i)] for i in IDS[example]]


@dataclasses.dataclass(frozen=True)
class Family:
    """A tiny float64 model (seeded) and the batch a method of this family takes.

    Attributes:
        flat: the model takes the token ids flat (:func:`~_user_models.flat_ids`), the lengths as offsets.
        layer_batch_dim: the dimension of the layer's output that holds the examples (1 for ``emb(ids.t())``).
        runs_empty: the model takes an empty batch (one that packs its sequences cannot: torch refuses to pack an
            empty batch).
    """

    make: Callable[[], nn.Module]
    layer: Callable[[Any], nn.Module]
    takes_embeddings: bool
    flat: bool = False
    layer_batch_dim: int = 0
    runs_empty: bool = True

    def model(self) -> Any:
        torch.manual_seed(0)
        return self.make().double().eval()

    def subject(self) -> Subject:
        model = self.model()
        inputs = model.embedding(IDS).detach() if self.takes_embeddings else IDS.clone()
        if self.flat:
            inputs = flat_ids(IDS, LENGTHS)
        return Subject(model, self.layer(model), inputs, LENGTHS.clone(), self.takes_embeddings, self.flat)

    def tuple_subject(self) -> Subject:
        """Tuple inputs: two embedding tensors for an embedding method; ``(token_ids,)`` for a layer method."""
        if not self.takes_embeddings:
            plain = self.subject()
            assert isinstance(plain.inputs, Tensor)
            return dataclasses.replace(plain, inputs=(plain.inputs,))
        torch.manual_seed(5)
        generator = torch.Generator().manual_seed(6)
        inputs = (torch.randn(3, 4, 3, dtype=torch.float64, generator=generator),
                  torch.randn(3, 2, 3, dtype=torch.float64, generator=generator))
        model = Pair().double().eval()
        return Subject(model, model.left, inputs, None, True)


class TinyTransformer(nn.Module):
    """A transformer classifier a user writes: embedding → ``nn.TransformerEncoder`` (padding from the lengths,
    dropout 0.5 in its ``nn.Dropout`` modules) → mean over the real tokens → linear; ``forward_embeddings`` for the
    methods that take embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 4, padding_idx=0)
        layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.5, activation="gelu", batch_first=True)
        layer.self_attn.dropout = 0.0  # no nn.Dropout module, so the suite could not switch it off in training mode
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.output = nn.Linear(4, CLASSES)

    def forward_embeddings(self, x: Tensor, lengths: Tensor) -> Tensor:
        padding = torch.arange(x.shape[1]) >= lengths.unsqueeze(1)
        hidden = self.encoder(x, src_key_padding_mask=padding)
        keep = (~padding).to(hidden).unsqueeze(-1)
        out: Tensor = self.output((hidden * keep).sum(1) / keep.sum(1))
        return out

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return self.forward_embeddings(self.embedding(ids), lengths)


RECURRENT = dict(vocab_size=VOCAB, embedding_dim=3, hidden_size=3, num_classes=CLASSES, bidirectional=True,
                 pooling="attention", dropout=0.5)
EMBEDDINGS = Family(lambda: LSTMClassifier(**RECURRENT), lambda m: m.embedding, True)
TOKENS = Family(lambda: LSTMClassifier(**RECURRENT), lambda m: m.embedding, False)
TRANSFORMER_EMBEDDINGS = Family(TinyTransformer, lambda m: m.embedding, True)
TRANSFORMER_TOKENS = Family(TinyTransformer, lambda m: m.embedding, False)
CNN_TOKENS = Family(
    lambda: TextCNN(VOCAB, 4, CLASSES, channels=(4, 3), kernel_sizes=(3, 2), dropout=0.5),
    lambda m: m.activations[0],
    False,
)


def _kim() -> KimCNN:
    return KimCNN(VOCAB, 4, CLASSES, num_filters=3, filter_sizes=(2, 3, 4), dropout=0.5)


KIM_TOKENS = Family(_kim, lambda m: m.embedding, False)
KIM_CONV = Family(_kim, lambda m: m.convs[1], False)
BAG_FLAT = Family(lambda: BagClassifier(VOCAB, 3, CLASSES, mode="sum", weighted=True), lambda m: m.embedding, False,
                  flat=True)
BAG_2D = Family(lambda: BagClassifier(VOCAB, 3, CLASSES, mode="mean", flat=False), lambda m: m.embedding, False)
PROJECTED = Family(lambda: ProjectedLSTM(VOCAB, 3, CLASSES), lambda m: m.embedding, True, runs_empty=False)
SEQ_FIRST = Family(
    lambda: SeqFirstLSTM(VOCAB, 3, CLASSES), lambda m: m.embedding, False, layer_batch_dim=1, runs_empty=False
)
MASKED_LOOP = Family(lambda: MaskedLoop(VOCAB, 3, CLASSES), lambda m: m.embedding, True)


TRANSFORMERS = {
    "bert": lambda: HFTokenClassifier(VOCAB, CLASSES, attn_implementation="sdpa"),
    "encoder": lambda: EncoderTokenClassifier(VOCAB, CLASSES, norm_first=True),
    "lstm-self-attention": lambda: LSTMSelfAttentionClassifier(VOCAB, CLASSES),
}
"""Transformer classifiers read like the reference models (``_token_transformers.py``), by label."""


def transformer_families(takes_embeddings: bool) -> List[Tuple[str, Family]]:
    """``(label, family)`` of every transformer of :data:`TRANSFORMERS`, its token embedding as the layer."""
    return [(label, Family(make, lambda m: m.embedding, takes_embeddings)) for label, make in TRANSFORMERS.items()]


class Returns(NamedTuple):
    """The shape a method returns, from an input ``x`` and the output ``z`` of the subject's layer."""

    doc: str
    shape: Callable[[Tensor, Any], Tuple[int, ...]]
    per_input: bool
    """Whether tuple inputs give a tuple of results, one per input (else: the layer's shape, whatever the inputs)."""
    layer_layout: bool = False
    """Whether the result is laid out as the layer's output (its examples in the family's ``layer_batch_dim``)."""


INPUT_SHAPE = Returns("the input's shape", lambda x, z: tuple(x.shape), True)
TOKEN_SCORES = Returns("(N, T): one score per token", lambda x, z: tuple(x.shape[:2]), True)
LAYER_SHAPE = Returns("the layer's output shape", lambda x, z: tuple(z.shape), False, layer_layout=True)
LAYER_TOKEN_SCORES = Returns("(N, T): one score per token", lambda x, z: tuple(x.shape[:2]), False)
LOCATION_SCORES = Returns("(N, L): one score per location of the layer",
                          lambda x, z: (z.shape[0], z.shape[2] if z.dim() == 4 else z.shape[-1]), False)
LOOKED_UP_ROWS = Returns("the looked-up rows: (M, E) for M flat ids, (N, L, E) for 2-D ids",
                         lambda x, z: (*x.shape, z.shape[-1]), False)
FLAT_ID_SCORES = Returns("(M,): one score per flat id, (N, L) for 2-D ids", lambda x, z: tuple(x.shape), False)

ONE_OUTPUT = "one output per example"
PREDICTED_CLASS = "the predicted class"

TARGET_FORMS = ("int", "0-d tensor", "1-element tensor", "list", "1-D tensor", "None, output (N,)",
                "None, output (N, 1)", "tuple", "list of tuples")
PREDICTED_CLASS_FORMS = ("int", "0-d tensor", "1-element tensor", "list", "1-D tensor", "None, predicted class")

ITEMS = frozenset({"shapes", "targets", "forward_args", "untouched", "threads", "noise_tunnel", "future",
                   "visualization", "bad_input", "interface"})
"""The contract items (one test function or more each, in ``test_contract.py``)."""


def attribute(explainer: Any, inputs: Any, target: Any, lengths: Any) -> Any:
    """The call every Captum method answers."""
    return explainer.attribute(inputs, target=target, additional_forward_args=lengths)


def optimize(explainer: HiddenUnitOptimization, inputs: Any, target: Any, lengths: Any) -> Any:
    return explainer.optimize(inputs, target=target, additional_forward_args=lengths, n_locations=2, n_neighbors=2)


def _tokens(explainer: Any, tokens: Sequence[str]) -> List[str]:
    return list(tokens)


def _receptive_fields(explainer: HiddenUnitSaliency, tokens: Sequence[str]) -> List[str]:
    return [" ".join(tokens[start:end]) for start, end in explainer.receptive_fields(len(tokens)).tolist()]


@dataclasses.dataclass(frozen=True)
class Case:
    """One attribution class in the contract suite.

    Attributes:
        method: the class.
        family: the models and batches it runs on.
        build: makes the method from the forward module and the :class:`Subject` (its ``layer``, ``model``).
        returns: the shape :meth:`attribute` returns (written in ``docs/contract.rst``).
        bases: Captum's base classes it is an instance of.
        multiplies_by_inputs: what its ``multiplies_by_inputs`` says.
        has_convergence_delta: what its ``has_convergence_delta()`` says.
        none_target: what ``target=None`` means: Captum's "the output is one score per example", or the paper's
            predicted class.
        target_forms: the target forms it takes (:data:`TARGET_FORMS`); the others must be refused clearly.
        input_dtype_error: for a wrong input dtype (floats for token ids, integers for embeddings): the inputs to
            pass, the exception and the message; ``None`` where the model, not the method, reads the inputs.
        refuses_ops: whether an op without a rule raises ``UnsupportedOperationError`` (the guarded methods).
        units: the label of every scored unit of one example, from its tokens (for ``visualize_text``).
        call: how the suite calls it.
        items: the contract items that apply.
        model: names the model form (or the transformer) when the class runs on more than one (the test ids, ``Class-model``).
        doc_row: what follows the class in its row of ``docs/contract.rst`` when that row is not the class's first.
    """

    method: Type[Any]
    family: Family
    build: Callable[[nn.Module, Subject], Any]
    returns: Optional[Returns]
    bases: Tuple[type, ...]
    multiplies_by_inputs: Optional[bool] = None
    has_convergence_delta: Optional[bool] = None
    none_target: str = ONE_OUTPUT
    target_forms: Tuple[str, ...] = TARGET_FORMS
    input_dtype_error: Optional[Tuple[Callable[[Tensor], Tensor], Type[Exception], str]] = None
    refuses_ops: bool = False
    units: Callable[[Any, Sequence[str]], List[str]] = _tokens
    call: Callable[[Any, Any, Any, Any], Any] = attribute
    items: FrozenSet[str] = ITEMS
    model: str = ""
    doc_row: str = ""

    @property
    def name(self) -> str:
        return self.method.__name__

    @property
    def id(self) -> str:
        """The test id: the class, and the model form if any."""
        return f"{self.name}-{self.model}" if self.model else self.name

    @property
    def is_layer_method(self) -> bool:
        return LayerAttribution in self.bases


TRANSFORMER_ITEMS = frozenset({"shapes", "targets", "forward_args", "untouched", "threads", "noise_tunnel",
                               "visualization"})
"""The items that depend on the model, for a class's cases on further models (transformers)."""

EMBEDDINGS_NOT_IDS = (lambda x: x.long(), TypeError,
                      r"Expected `inputs` to be floating-point tensors .*embeddings\), but input 0 is torch.int64")

def _hunt(forward: nn.Module, s: Subject) -> HiddenUnitOptimization:
    return HiddenUnitOptimization(forward, s.layer, s.model.embedding, WORDS, lambda1=0.004, lambda2=0.02, lr=0.05,
                                  max_steps=5, window=2)


LAYER_FLAGS = dict(multiplies_by_inputs=True, has_convergence_delta=True, refuses_ops=True)
CD_LAYER_FLAGS = dict(multiplies_by_inputs=True, has_convergence_delta=False, refuses_ops=True)
GLS_LAYER_FLAGS = dict(multiplies_by_inputs=False, has_convergence_delta=False)
LRP_BASES = (GradientAttribution,)
LAYER_LRP_BASES = (LayerAttribution, GradientAttribution)
BAG_ROW = " at an ``nn.EmbeddingBag``"
NO_VISUALIZATION = ITEMS - {"visualization"}
"""Flat token ids have no per-example rows to show."""


def _layer_lrp(forward: nn.Module, s: Subject) -> LayerLSTMLRP:
    return LayerLSTMLRP(forward, s.layer)


def _layer_cd(forward: nn.Module, s: Subject) -> LayerContextualDecomposition:
    return LayerContextualDecomposition(forward, s.layer)


def _layer_gls(forward: nn.Module, s: Subject) -> LayerGradientLinearSurrogate:
    return LayerGradientLinearSurrogate(forward, s.layer)


MODEL_FORMS: List[Case] = [
    Case(LayerLSTMLRP, KIM_TOKENS, _layer_lrp, LAYER_SHAPE, LAYER_LRP_BASES, model="kim-cnn", **LAYER_FLAGS),
    Case(LayerContextualDecomposition, KIM_TOKENS, _layer_cd, LAYER_TOKEN_SCORES, (LayerAttribution,),
         model="kim-cnn", **CD_LAYER_FLAGS),
    Case(LayerGradientLinearSurrogate, KIM_TOKENS, _layer_gls, LAYER_SHAPE, LAYER_LRP_BASES, model="kim-cnn",
         **GLS_LAYER_FLAGS),
    Case(HiddenUnitSaliency, KIM_CONV, lambda forward, s: HiddenUnitSaliency(forward, s.layer), LOCATION_SCORES,
         LAYER_LRP_BASES, multiplies_by_inputs=True, has_convergence_delta=False, none_target=PREDICTED_CLASS,
         target_forms=PREDICTED_CLASS_FORMS, units=_receptive_fields, model="kim-cnn"),
    Case(HiddenUnitOptimization, KIM_CONV, _hunt, None, (), none_target=PREDICTED_CLASS, call=optimize,
         items=frozenset({"untouched", "threads"}), model="kim-cnn"),
    *[
        Case(method, family, build, returns, bases, model=name, doc_row=BAG_ROW, items=items, **flags)
        for family, name, items in ((BAG_FLAT, "bag-flat", NO_VISUALIZATION), (BAG_2D, "bag-2d", ITEMS))
        for method, build, returns, bases, flags in (
            (LayerLSTMLRP, _layer_lrp, LOOKED_UP_ROWS, LAYER_LRP_BASES, LAYER_FLAGS),
            (LayerContextualDecomposition, _layer_cd, FLAT_ID_SCORES, (LayerAttribution,), CD_LAYER_FLAGS),
            (LayerGradientLinearSurrogate, _layer_gls, LOOKED_UP_ROWS, LAYER_LRP_BASES, GLS_LAYER_FLAGS),
        )
    ],
    Case(LSTMLRP, PROJECTED, lambda forward, s: LSTMLRP(forward), INPUT_SHAPE, LRP_BASES, model="lstm-proj",
         input_dtype_error=EMBEDDINGS_NOT_IDS, **LAYER_FLAGS),
    Case(ContextualDecomposition, PROJECTED, lambda forward, s: ContextualDecomposition(forward), TOKEN_SCORES,
         (Attribution,), model="lstm-proj", input_dtype_error=EMBEDDINGS_NOT_IDS, **CD_LAYER_FLAGS),
    Case(LayerLSTMLRP, SEQ_FIRST, _layer_lrp, LAYER_SHAPE, LAYER_LRP_BASES, model="seq-first", **LAYER_FLAGS),
    Case(LayerContextualDecomposition, SEQ_FIRST, _layer_cd, LAYER_TOKEN_SCORES, (LayerAttribution,),
         model="seq-first", **CD_LAYER_FLAGS),
    Case(LSTMLRP, MASKED_LOOP, lambda forward, s: LSTMLRP(forward), INPUT_SHAPE, LRP_BASES, model="masked-loop",
         input_dtype_error=EMBEDDINGS_NOT_IDS, **LAYER_FLAGS),
    Case(ContextualDecomposition, MASKED_LOOP, lambda forward, s: ContextualDecomposition(forward), TOKEN_SCORES,
         (Attribution,), model="masked-loop", input_dtype_error=EMBEDDINGS_NOT_IDS, **CD_LAYER_FLAGS),
]
"""The classes again on the model forms of Captum's and PyTorch's tutorials and their users (``_user_models.py``):
the Kim CNN of ``nn.Conv2d`` over the embeddings as an image, ``nn.EmbeddingBag`` with flat ids and offsets (and
2-D ids), ``nn.LSTM(proj_size > 0)``, a layer output :math:`(T, N, E)`, a cell loop masked by multiplication."""

CASES: List[Case] = [
    Case(LSTMLRP, EMBEDDINGS, lambda forward, s: LSTMLRP(forward), INPUT_SHAPE, (GradientAttribution,),
         multiplies_by_inputs=True, has_convergence_delta=True, input_dtype_error=EMBEDDINGS_NOT_IDS,
         refuses_ops=True),
    Case(LayerLSTMLRP, TOKENS, lambda forward, s: LayerLSTMLRP(forward, s.layer), LAYER_SHAPE,
         (LayerAttribution, GradientAttribution), multiplies_by_inputs=True, has_convergence_delta=True,
         refuses_ops=True),
    Case(TransformerLRP, TRANSFORMER_EMBEDDINGS, lambda forward, s: TransformerLRP(forward), INPUT_SHAPE,
         (GradientAttribution,), multiplies_by_inputs=True, has_convergence_delta=True,
         input_dtype_error=EMBEDDINGS_NOT_IDS, refuses_ops=True),
    Case(LayerTransformerLRP, TRANSFORMER_TOKENS, lambda forward, s: LayerTransformerLRP(forward, s.layer, rule="cp"),
         LAYER_SHAPE, (LayerAttribution, GradientAttribution), multiplies_by_inputs=True, has_convergence_delta=True,
         refuses_ops=True),
    Case(ContextualDecomposition, EMBEDDINGS, lambda forward, s: ContextualDecomposition(forward), TOKEN_SCORES,
         (Attribution,), multiplies_by_inputs=True, has_convergence_delta=False,
         input_dtype_error=EMBEDDINGS_NOT_IDS, refuses_ops=True),
    Case(LayerContextualDecomposition, TOKENS, lambda forward, s: LayerContextualDecomposition(forward, s.layer),
         LAYER_TOKEN_SCORES, (LayerAttribution,), multiplies_by_inputs=True,
         has_convergence_delta=False, refuses_ops=True),
    *[
        Case(ContextualDecomposition, family, lambda forward, s: ContextualDecomposition(forward), TOKEN_SCORES,
             (Attribution,), multiplies_by_inputs=True, has_convergence_delta=False, refuses_ops=True,
             items=TRANSFORMER_ITEMS, model=label)
        for label, family in transformer_families(takes_embeddings=True)
    ],
    *[
        Case(LayerContextualDecomposition, family, lambda forward, s: LayerContextualDecomposition(forward, s.layer),
             LAYER_TOKEN_SCORES, (LayerAttribution,), multiplies_by_inputs=True, has_convergence_delta=False,
             refuses_ops=True, items=TRANSFORMER_ITEMS, model=label)
        for label, family in transformer_families(takes_embeddings=False)
    ],
    Case(GradientLinearSurrogate, EMBEDDINGS, lambda forward, s: GradientLinearSurrogate(forward), INPUT_SHAPE,
         (GradientAttribution,), multiplies_by_inputs=False, has_convergence_delta=False,
         input_dtype_error=EMBEDDINGS_NOT_IDS),
    Case(LayerGradientLinearSurrogate, TOKENS, lambda forward, s: LayerGradientLinearSurrogate(forward, s.layer),
         LAYER_SHAPE, (LayerAttribution, GradientAttribution), multiplies_by_inputs=False,
         has_convergence_delta=False),
    Case(HiddenUnitSaliency, CNN_TOKENS, lambda forward, s: HiddenUnitSaliency(forward, s.layer), LOCATION_SCORES,
         (LayerAttribution, GradientAttribution), multiplies_by_inputs=True, has_convergence_delta=False,
         none_target=PREDICTED_CLASS, target_forms=PREDICTED_CLASS_FORMS, units=_receptive_fields),
    Case(HiddenUnitOptimization, CNN_TOKENS, _hunt, None, (), none_target=PREDICTED_CLASS,
         input_dtype_error=(lambda x: x.double(), ValueError, r"Expected `inputs` to be token ids of shape \(N, T\)"),
         call=optimize, items=frozenset({"untouched", "threads", "bad_input"})),
    *MODEL_FORMS,
]
"""Every attribution class of the package, on the package's models and on the model forms of :data:`MODEL_FORMS`."""


def cases(item: str, where: Callable[[Case], bool] = lambda case: True) -> List[Any]:
    """The cases an item applies to, as pytest parameters named by their class (and model form)."""
    return [pytest.param(case, id=case.id) for case in CASES if item in case.items and where(case)]
