"""The Captum contract of every attribution class of the package, one parametrized test per item over the one config
list in ``_contract_config.py`` (as Captum's ``test_targets.py`` and ``test_hook_removal.py`` run over its
``test_config.py``). Tiny float64 models; the shapes tested are the ones ``docs/contract.rst`` states."""

from __future__ import annotations

import dataclasses
import html
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest
import torch
from captum.attr import NoiseTunnel, visualization
from torch import Tensor, nn

from _contract_config import (
    CASES,
    CLASSES,
    ONE_OUTPUT,
    Case,
    Head,
    Subject,
    cases,
)
from _model_state import assert_model_unchanged, assert_torch_unchanged, model_state, torch_state
from captum_text_ext.decomposition import UnsupportedOperationError
from captum_text_ext.visualization import to_visualization_record

DOCS = Path(__file__).resolve().parents[2] / "docs" / "contract.rst"
EXACT = 1e-12
PER_EXAMPLE = 1e-10
"""A batch against each example alone: the same ops, batched (float64)."""
THREADS, ROUNDS = 4, 10


class ModelError(RuntimeError):
    """What the failing model raises."""


def _fail(output: Tensor) -> Tensor:
    raise ModelError("the model failed")


def _grid(output: Tensor) -> Tensor:
    """``(N, 2, C)``: the logits twice, for tuple targets."""
    return output.unsqueeze(1).expand(-1, 2, -1)


class Closed(nn.Module):
    """A forward module with its additional arguments bound."""

    def __init__(self, inner: nn.Module, *args: Any) -> None:
        super().__init__()
        self.inner, self.args = inner, args

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x, *self.args)


class Twice(nn.Module):
    """Runs the model twice per forward pass (every layer is called twice)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        self.inner(x, lengths)
        return self.inner(x, lengths)


def tensors(result: Any) -> List[Tensor]:
    """Every tensor of a result (a tensor, a tuple, a dataclass of them)."""
    if isinstance(result, Tensor):
        return [result]
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in tensors(item)]
    if dataclasses.is_dataclass(result):
        return [t for field in dataclasses.fields(result) for t in tensors(getattr(result, field.name))]
    return []


def assert_same(got: Any, expected: Any, atol: float = EXACT) -> None:
    got_tensors, expected_tensors = tensors(got), tensors(expected)
    assert len(got_tensors) == len(expected_tensors) > 0
    for a, b in zip(got_tensors, expected_tensors):
        torch.testing.assert_close(a, b, rtol=0, atol=atol, equal_nan=True)


def build(case: Case, subject: Subject, head: Optional[Head] = None) -> Any:
    return case.build(subject.forward(head), subject)


def layer_output(subject: Subject) -> Optional[Tensor]:
    """The output of the subject's layer in a forward pass (``None`` when the model does not run it)."""
    seen: List[Tensor] = []
    handle = subject.layer.register_forward_hook(lambda module, args, output: seen.append(output))
    try:
        with torch.no_grad():
            subject.forward()(subject.inputs, subject.lengths)
    finally:
        handle.remove()
    return seen[0] if seen else None


def per_example(case: Case, explainer: Any, subject: Subject, targets: Sequence[int]) -> Tensor:
    """Each example attributed alone, with its own int target (Captum's ``test_targets`` invariant)."""
    assert isinstance(subject.inputs, Tensor) and subject.lengths is not None
    rows = [
        case.call(explainer, subject.inputs[n : n + 1], t, subject.lengths[n : n + 1])[0]
        for n, t in enumerate(targets)
    ]
    return torch.stack(rows)


def prepared(case: Case) -> Subject:
    """A model as users hand it over: in training mode (dropout off, so the results are deterministic), one frozen
    parameter, and their own hooks."""
    subject = case.family.subject()
    model = subject.model
    model.train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.eval()
    next(model.parameters()).requires_grad_(False)
    model.register_forward_pre_hook(lambda *args: None)
    subject.layer.register_forward_hook(lambda *args: None)
    return subject


# ------------------------------------------------------------------------------------------------------------------
# Tensor in, tensor out; tuple in, tuple out; the documented shapes
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("shapes"))
def test_a_tensor_gives_one_contiguous_tensor_of_the_documented_shape(case: Case) -> None:
    assert case.returns is not None
    subject = case.family.subject()
    result = case.call(build(case, subject), subject.inputs, 1, subject.lengths)
    assert isinstance(result, Tensor)
    assert isinstance(subject.inputs, Tensor)
    assert tuple(result.shape) == case.returns.shape(subject.inputs, layer_output(subject))
    assert result.is_contiguous() and result.dtype == torch.float64


@pytest.mark.parametrize("case", cases("shapes"))
def test_the_docs_state_the_shape(case: Case) -> None:
    assert case.returns is not None
    row = f"   * - :class:`~captum_text_ext.{case.name}`\n"
    text = DOCS.read_text(encoding="utf-8")
    assert row in text
    cells = text.split(row, 1)[1].split("   * - ", 1)[0]
    assert f"     - {case.returns.doc}\n" in cells


@pytest.mark.parametrize("case", cases("shapes"))
def test_a_tuple_gives_a_tuple_or_the_layers_shape(case: Case) -> None:
    assert case.returns is not None
    subject = case.family.tuple_subject()
    assert isinstance(subject.inputs, tuple)
    explainer = build(case, subject)
    result = case.call(explainer, subject.inputs, 1, subject.lengths)
    if case.returns.per_input:
        assert isinstance(result, tuple) and len(result) == len(subject.inputs)
        for part, x in zip(result, subject.inputs):
            assert tuple(part.shape) == case.returns.shape(x, None)
            assert part.is_contiguous() and part.dtype == torch.float64
    else:  # a layer method: the layer's output, whatever container the model's inputs came in
        assert isinstance(result, Tensor)
        assert torch.equal(result, case.call(explainer, subject.inputs[0], 1, subject.lengths))


# ------------------------------------------------------------------------------------------------------------------
# Every Captum target form gives the per-example results
# ------------------------------------------------------------------------------------------------------------------

TARGETS: Dict[str, Tuple[Optional[Head], Any, Optional[List[int]]]] = {
    "int": (None, 1, [1, 1, 1]),
    "0-d tensor": (None, torch.tensor(1), [1, 1, 1]),
    "1-element tensor": (None, torch.tensor([1]), [1, 1, 1]),
    "list": (None, [2, 0, 1], [2, 0, 1]),
    "1-D tensor": (None, torch.tensor([2, 0, 1]), [2, 0, 1]),
    "None, output (N,)": (lambda y: y[:, 1], None, [1, 1, 1]),
    "None, output (N, 1)": (lambda y: y[:, 1:2], None, [1, 1, 1]),
    "tuple": (_grid, (0, 1), [1, 1, 1]),
    "list of tuples": (_grid, [(0, 2), (1, 0), (0, 1)], [2, 0, 1]),
    "None, predicted class": (None, None, None),
}
"""Per form: the head on the model's logits, the target, and the int target of each example it means (``None``: the
predicted class)."""


@pytest.mark.parametrize(
    "case,form",
    [pytest.param(c, form, id=f"{c.id}-{form}") for c in CASES if "targets" in c.items for form in c.target_forms],
)
def test_every_target_form_gives_the_per_example_results(case: Case, form: str) -> None:
    head, target, meant = TARGETS[form]
    subject = case.family.subject()
    if meant is None:
        with torch.no_grad():
            meant = subject.forward()(subject.inputs, subject.lengths).argmax(1).tolist()
    expected = per_example(case, build(case, subject), subject, meant)
    got = case.call(build(case, subject, head), subject.inputs, target, subject.lengths)
    assert_same(got, expected, PER_EXAMPLE)


@pytest.mark.parametrize("case", cases("targets", lambda c: "tuple" not in c.target_forms))
def test_a_tuple_target_it_does_not_take_is_refused_clearly(case: Case) -> None:
    subject = case.family.subject()
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\)"):
        case.call(build(case, subject, _grid), subject.inputs, (0, 1), subject.lengths)


# ------------------------------------------------------------------------------------------------------------------
# additional_forward_args
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("forward_args"))
def test_additional_forward_args_are_passed_through_and_never_attributed(case: Case) -> None:
    subject = case.family.subject()
    lengths = subject.lengths
    assert lengths is not None
    kept = lengths.clone()
    explainer = build(case, subject)
    given = case.call(explainer, subject.inputs, [2, 0, 1], lengths)
    bound = case.build(Closed(subject.forward(), lengths), subject)
    assert_same(case.call(bound, subject.inputs, [2, 0, 1], None), given)
    assert_same(case.call(explainer, subject.inputs, [2, 0, 1], (lengths,)), given)  # Captum's tuple form
    assert isinstance(given, Tensor)  # the one input's result: nothing for the lengths
    assert torch.equal(lengths, kept) and not lengths.requires_grad and lengths.grad is None


# ------------------------------------------------------------------------------------------------------------------
# The model and torch are left as they were: after a call, after a call that raises, with four threads at once
# ------------------------------------------------------------------------------------------------------------------

RAISING: Dict[str, Tuple[Optional[Head], Any, Any]] = {
    "model raises": (_fail, 1, ModelError),
    "op without a rule": (torch.exp, 1, UnsupportedOperationError),
    "bad target": (None, CLASSES + 4, Exception),  # which error: test_a_bad_target_is_refused_clearly
}


@pytest.mark.parametrize(
    "case,how",
    [
        pytest.param(c, how, id=f"{c.id}-{how}")
        for c in CASES
        if "untouched" in c.items
        for how in ("call", "call under no_grad", *RAISING)
        if how != "op without a rule" or c.refuses_ops
    ],
)
def test_the_model_and_torch_are_left_as_they_were(case: Case, how: str) -> None:
    subject = prepared(case)
    head, target, error = RAISING.get(how, (None, [2, 0, 1], None))
    forward = subject.forward(head)  # the user's model, as the method sees it
    explainer = case.build(forward, subject)
    before, torch_before = model_state(forward), torch_state()
    if error is not None:
        with pytest.raises(error):
            case.call(explainer, subject.inputs, target, subject.lengths)
    else:
        result = case.call(explainer, subject.inputs, target, subject.lengths)
    assert_torch_unchanged(torch_before)
    if how == "call under no_grad":
        with torch.no_grad():
            torch_before = torch_state()
            assert_same(case.call(explainer, subject.inputs, target, subject.lengths), result)
            assert_torch_unchanged(torch_before)
    assert_model_unchanged(before, forward)


@pytest.mark.parametrize("case", cases("threads"))
def test_four_threads_calling_at_once_get_the_sequential_results(case: Case) -> None:
    subject = prepared(case)
    forward = subject.forward()
    explainer = case.build(forward, subject)
    before, torch_before = model_state(forward), torch_state()
    targets: List[Any] = [0, 1, 2, [2, 0, 1]]
    expected = [case.call(explainer, subject.inputs, t, subject.lengths) for t in targets]
    start = threading.Barrier(THREADS)

    def work(thread: int) -> List[Any]:
        results: List[Any] = []
        try:
            for _ in range(ROUNDS):
                start.wait()  # every round, the four calls start together
                results.append(case.call(explainer, subject.inputs, targets[thread], subject.lengths))
        except BaseException:
            start.abort()  # the other threads stop at their next round instead of waiting for this one
            raise
        return results

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(work, thread) for thread in range(THREADS)]
    errors = [f.exception() for f in futures if f.exception() is not None]
    first = next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), None)
    if first is not None:
        raise first
    results = [f.result() for f in futures]
    for thread, rounds in enumerate(results):
        for result in rounds:
            assert_same(result, expected[thread])
    assert_model_unchanged(before, forward)
    assert_torch_unchanged(torch_before)


# ------------------------------------------------------------------------------------------------------------------
# NoiseTunnel, attribute_future, visualize_text
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("noise_tunnel", lambda c: c.family.takes_embeddings))
def test_noise_tunnel_without_noise_equals_the_method(case: Case) -> None:
    """On embedding inputs only: noise on token ids means nothing (a token-id class gets it through its embedding
    twin)."""
    subject = case.family.subject()
    explainer = build(case, subject)
    smoothed = NoiseTunnel(explainer).attribute(
        subject.inputs, nt_type="smoothgrad", nt_samples=2, stdevs=0.0, target=1,
        additional_forward_args=subject.lengths,
    )
    assert_same(smoothed, case.call(explainer, subject.inputs, 1, subject.lengths))


@pytest.mark.parametrize("case", cases("future"))
def test_attribute_future_is_not_implemented(case: Case) -> None:
    with pytest.raises(NotImplementedError):
        build(case, case.family.subject()).attribute_future()


@pytest.mark.parametrize("case", cases("visualization"))
def test_visualize_text_shows_the_scores_of_one_example(case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    subject = case.family.subject()
    explainer = build(case, subject)
    scores = case.call(explainer, subject.inputs, 1, subject.lengths)[0]
    units = case.units(explainer, subject.tokens(0))  # "<unk>" among them
    record = to_visualization_record(units, scores, 0.7, 1, 1, 1)
    per_unit = scores.sum(-1) if scores.dim() == 2 else scores
    escaped = [html.escape(unit) for unit in units]
    assert record.raw_input_ids == escaped and record.word_attributions.shape == (len(units),)
    assert torch.allclose(record.word_attributions * per_unit.abs().max(), per_unit, rtol=0, atol=EXACT)
    page = visualization.visualize_text([record]).data
    capsys.readouterr()  # outside a notebook, visualize_text also prints the page object
    assert all(unit in page for unit in escaped)


# ------------------------------------------------------------------------------------------------------------------
# Bad input gets the package's clear error
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("bad_input", lambda c: c.input_dtype_error is not None))
def test_a_wrong_input_dtype_is_refused_clearly(case: Case) -> None:
    assert case.input_dtype_error is not None
    convert, error, message = case.input_dtype_error
    subject = case.family.subject()
    assert isinstance(subject.inputs, Tensor)
    with pytest.raises(error, match=message):
        case.call(build(case, subject), convert(subject.inputs), 1, subject.lengths)


BAD_TARGETS: Dict[str, Any] = {
    "out of range": CLASSES + 4,
    "float": 1.5,
    "list of the wrong length": [0, 1],
    "None on a model with several outputs": None,
}
"""Per form, the target; every one is refused with a ``ValueError`` that names the target."""


@pytest.mark.parametrize(
    "case,form",
    [
        pytest.param(c, form, id=f"{c.id}-{form}")
        for c in CASES
        if "bad_input" in c.items
        for form in BAD_TARGETS
        if BAD_TARGETS[form] is not None or c.none_target == ONE_OUTPUT
    ],
)
def test_a_bad_target_is_refused_clearly(case: Case, form: str) -> None:
    subject = case.family.subject()
    message = r"Expected `target` to select one \w+ per example" if BAD_TARGETS[form] is None else "target"
    with pytest.raises(ValueError, match=message):
        case.call(build(case, subject), subject.inputs, BAD_TARGETS[form], subject.lengths)


@pytest.mark.parametrize("case", cases("bad_input"))
def test_a_model_that_is_not_callable_is_refused_clearly(case: Case) -> None:
    with pytest.raises(TypeError, match=r"Expected `(model|forward_func)` to be (an nn.Module or a )?callable"):
        case.build(3, case.family.subject())  # type: ignore[arg-type]


LAYER_METHODS = cases("bad_input", lambda c: c.is_layer_method)


@pytest.mark.parametrize("case", LAYER_METHODS)
def test_a_layer_that_is_not_a_module_is_refused_clearly(case: Case) -> None:
    subject = dataclasses.replace(case.family.subject(), layer="embedding")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Expected `layer` to be an nn.Module, but got str"):
        build(case, subject)


@pytest.mark.parametrize("case", LAYER_METHODS)
def test_a_layer_that_does_not_run_once_is_refused_clearly(case: Case) -> None:
    subject = case.family.subject()
    before = model_state(subject.model)
    elsewhere = dataclasses.replace(subject, layer=nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Expected the layer Linear to run in the forward pass"):
        case.call(build(case, elsewhere), subject.inputs, 1, subject.lengths)
    twice = case.build(Twice(subject.forward()), subject)
    with pytest.raises(ValueError, match="to be called once per forward pass"):
        case.call(twice, subject.inputs, 1, subject.lengths)
    assert_model_unchanged(before, subject.model)


# ------------------------------------------------------------------------------------------------------------------
# Captum's interface
# ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("interface"))
def test_captum_base_classes_and_flags(case: Case) -> None:
    subject = case.family.subject()
    explainer = build(case, subject)
    assert all(isinstance(explainer, base) for base in case.bases)
    assert explainer.multiplies_by_inputs is case.multiplies_by_inputs
    assert explainer.has_convergence_delta() is case.has_convergence_delta
    if case.is_layer_method:
        assert explainer.layer is subject.layer
