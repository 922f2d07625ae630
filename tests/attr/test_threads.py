"""Several threads explaining one model at once, with our methods and Captum's mixed: every call gives its sequential
result and the model is left exactly as it was (issue: per-call, per-thread state only)."""

from __future__ import annotations

import threading
from typing import Callable, Dict, List, Tuple

import torch
from captum.attr import IntegratedGradients, Saliency
from torch import Tensor

from _model_state import assert_model_unchanged, model_state
from captum_text_ext import LSTMLRP, ContextualDecomposition, LayerContextualDecomposition, LayerLSTMLRP
from captum_text_ext.models import LSTMClassifier

THREADS, CALLS, RUNS = 4, 20, 20
LENGTHS = torch.tensor([5, 3, 4])
IDS = torch.tensor([[2, 3, 4, 5, 6], [7, 8, 9, 0, 0], [3, 5, 7, 9, 0]])


def own(inputs: Tensor) -> Tensor:
    """A call's own copy of the inputs, requiring grad as Captum's gradient methods want them."""
    return inputs.clone().requires_grad_()


def _calls(model: LSTMClassifier) -> List[Callable[[], Tensor]]:
    """One call per method, each returning its attributions (tensors only, compared exactly)."""
    embeddings = model.embedding(IDS).detach()
    forward = model.forward_embeddings
    lrp, cd = LSTMLRP(forward, bias_factor=1.0), ContextualDecomposition(forward)
    layer_lrp, layer_cd = LayerLSTMLRP(model, model.embedding), LayerContextualDecomposition(model, model.embedding)
    saliency, integrated = Saliency(forward), IntegratedGradients(forward)
    return [
        lambda: lrp.attribute(embeddings, 1, LENGTHS),
        lambda: lrp.decompose(embeddings, 0, LENGTHS).initial_state_total,
        lambda: cd.attribute(embeddings, 1, LENGTHS, contrast=0),
        lambda: layer_lrp.attribute(IDS, [0, 1, 2], LENGTHS),
        lambda: layer_cd.attribute(IDS, 2, LENGTHS),
        # Captum's gradient methods switch requires_grad on the input tensor they are given (and back): each call
        # gets its own copy, as each thread of a user has its own data; ours never touch the inputs
        lambda: saliency.attribute(own(embeddings), target=1, additional_forward_args=(LENGTHS,)),
        lambda: integrated.attribute(own(embeddings), target=0, additional_forward_args=(LENGTHS,), n_steps=4),
    ]


def test_four_threads_mixing_our_methods_and_captums_give_the_sequential_results_twenty_times() -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(vocab_size=12, embedding_dim=4, hidden_size=3, num_classes=3, bidirectional=True,
                           pooling="attention", dropout=0.3).double().eval()
    model.output.weight.requires_grad_(False)  # a user's own flags are kept as they are, whatever they are
    calls = _calls(model)
    expected = [call() for call in calls]
    before = model_state(model)
    for _ in range(RUNS):
        barrier = threading.Barrier(THREADS)
        results: Dict[Tuple[int, int], Tensor] = {}
        errors: List[BaseException] = []

        def work(thread: int) -> None:
            try:
                barrier.wait()
                for step in range(CALLS):
                    which = (thread + step) % len(calls)
                    results[thread, step] = calls[which]()
            except BaseException as error:  # reported below, with the thread that raised
                errors.append(error)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        assert errors == []
        assert len(results) == THREADS * CALLS
        for (thread, step), got in results.items():
            assert torch.equal(got, expected[(thread + step) % len(calls)]), (thread, step)
        assert_model_unchanged(before, model)
