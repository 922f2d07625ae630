"""The method table of :mod:`captum_text_ext.explain`: every method runs on tiny models, exclusions give reasons."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from captum_text_ext.explain import DEFAULT_METHODS, METHODS, method_table
from captum_text_ext.metrics import REDUCTIONS
from captum_text_ext.models import BagOfWordsMLP, LSTMClassifier, TextCNN


def tiny_models():
    torch.manual_seed(0)
    lstm = LSTMClassifier(vocab_size=12, embedding_dim=4, hidden_size=3, num_classes=2).double().eval()
    cnn = TextCNN(vocab_size=12, embedding_dim=4, num_classes=2, channels=(3,), kernel_sizes=(2,)).double().eval()
    return {"lstm": lstm, "cnn": cnn}


@pytest.mark.parametrize("model_name", ["lstm", "cnn"])
def test_every_applicable_method_gives_finite_scores_and_zero_past_the_end(model_name):
    model = tiny_models()[model_name]
    ids = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]])
    lengths = torch.tensor([4, 2])
    target = torch.tensor([1, 0])
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for method in METHODS.values():
        reason = method.skip_reason(model)
        if reason is not None:
            assert model_name == "lstm" and method.key == "deep_lift" and "nn.LSTM" not in reason and "LSTM" in reason
            continue
        embeddings = model.embedding(ids).detach().requires_grad_()
        scores = method.token_scores(model, embeddings, lengths, target)
        assert scores.shape == (2, 4) and bool(torch.isfinite(scores).all()), method.key
        if method.key not in ("lime",):  # Lime's surrogate may give a padded token a tiny nonzero weight
            assert float(scores[1, 2:].abs().max()) == pytest.approx(0.0, abs=1e-9), method.key
        assert method.reduction in REDUCTIONS
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_occlusion_and_feature_ablation_agree_with_one_token_windows():
    model = tiny_models()["cnn"]
    embeddings = model.embedding(torch.tensor([[2, 3, 4, 5, 6]])).detach()
    lengths, target = torch.tensor([5]), torch.tensor([1])
    occlusion = METHODS["occlusion"].token_scores(model, embeddings, lengths, target)
    ablation = METHODS["feature_ablation"].token_scores(model, embeddings, lengths, target)
    assert torch.allclose(occlusion.double(), ablation.double(), atol=1e-6)


@pytest.mark.parametrize(("surrogate", "captum"), [("gradient_surrogate", "saliency"),
                                                   ("gradient_surrogate_x_input", "input_x_gradient")])
def test_gradient_surrogate_rows_equal_captum_gradient_rows(surrogate, captum):
    model = tiny_models()["lstm"]
    embeddings = model.embedding(torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]])).detach()
    lengths, target = torch.tensor([4, 2]), torch.tensor([1, 0])
    ours = METHODS[surrogate].token_scores(model, embeddings, lengths, target)
    theirs = METHODS[captum].token_scores(model, embeddings, lengths, target)
    assert torch.allclose(ours, theirs, atol=1e-12) and bool(ours.abs().max() > 0)


def test_models_without_token_embeddings_are_skipped_with_a_reason():
    model = BagOfWordsMLP(vocab_size=10, num_classes=2)
    for method in METHODS.values():
        assert "bag-of-words" in method.skip_reason(model)


def test_defaults_and_table():
    assert set(DEFAULT_METHODS) <= set(METHODS)
    rows = method_table()
    assert [r[0] for r in rows] == list(METHODS) and all(r[2] for r in rows)


def test_deep_lift_is_excluded_where_its_summation_to_delta_breaks():
    """The reason for the exclusion, measured: inside nn.LSTM DeepLift's attributions do not sum to f(x) - f(0),
    while on the CNN (whose nonlinearities are modules) they do."""
    from captum.attr import DeepLift

    from captum_text_ext.explain import _EmbeddingForward

    models = tiny_models()
    ids, lengths = torch.tensor([[2, 3, 4, 5], [6, 7, 8, 9]]), torch.tensor([4, 4])
    deltas = {}
    for name, model in models.items():
        embeddings = model.embedding(ids).detach().requires_grad_()
        _, delta = DeepLift(_EmbeddingForward(model)).attribute(
            embeddings, target=1, additional_forward_args=(lengths,), return_convergence_delta=True)
        deltas[name] = float(delta.abs().max())
    assert deltas["cnn"] < 1e-12 and deltas["lstm"] > 1e-3
    assert METHODS["deep_lift"].skip_reason(models["lstm"]) and METHODS["deep_lift"].skip_reason(models["cnn"]) is None


def test_the_registry_imports_no_report_writing_code():
    """The leaderboard, the CLI's parser and the tests import :data:`METHODS`; that must not pull in the report
    writers (:mod:`captum_text_ext.report`, the HTML and PNG renderers)."""
    code = (
        "import sys, captum_text_ext.explain; "
        "print(sorted(m for m in sys.modules if m.startswith(('captum_text_ext.report', "
        "'captum_text_ext.visualization', 'captum_text_ext.benchmarks'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
