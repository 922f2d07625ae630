"""The method table of :mod:`captum_text_ext.explain`: every method runs at a named embedding layer on tiny models,
gives the numbers the embeddings-based table gave, leaves the model alone, and explains subword models per word or
per subword."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch
from _transformer_models import require_extra
from captum.attr import (
    DeepLift,
    FeatureAblation,
    InputXGradient,
    IntegratedGradients,
    Lime,
    Occlusion,
    Saliency,
    ShapleyValueSampling,
)
from torch import nn

from captum_text_ext import LSTMLRP, ContextualDecomposition, GradientLinearSurrogate
from captum_text_ext.datasets import Vocabulary
from captum_text_ext.explain import (
    DEFAULT_METHODS,
    LIME_SAMPLES,
    METHODS,
    PERTURBATIONS_PER_EVAL,
    SHAPLEY_SAMPLES,
    LayerBatch,
    LayerForward,
    TextWarning,
    embedding_layer_name,
    explain,
    method_table,
)
from captum_text_ext.metrics import REDUCTIONS
from captum_text_ext.models import BagOfWordsMLP, LSTMClassifier, TextCNN

IDS = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]])
LENGTHS = torch.tensor([4, 2])
TARGET = torch.tensor([1, 0])


def tiny_models():
    torch.manual_seed(0)
    lstm = LSTMClassifier(vocab_size=12, embedding_dim=4, hidden_size=3, num_classes=2).double().eval()
    cnn = TextCNN(vocab_size=12, embedding_dim=4, num_classes=2, channels=(3,), kernel_sizes=(2,)).double().eval()
    return {"lstm": lstm, "cnn": cnn}


def batch_of(model, ids=IDS, lengths=LENGTHS, layer_output=None):
    return LayerBatch(model.embedding, ids, lengths, 2, layer_output)


class _Module(nn.Module):
    """``forward_embeddings`` as a module (Captum's DeepLift hooks the modules of the module it is given)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, embeddings, lengths):
        return self.model.forward_embeddings(embeddings, lengths)


def embeddings_based(key, model, embeddings, lengths, target):
    """What the registry computed before it moved to token ids: Captum's (and the package's) methods on
    ``model.forward_embeddings`` with the embeddings as the input, written out."""
    forward, args, x = model.forward_embeddings, (lengths,), embeddings.detach().requires_grad_()
    steps, width = x.shape[1], x.shape[2]
    features = torch.arange(steps).view(1, steps, 1).expand(1, steps, width).contiguous()
    common = dict(target=target, additional_forward_args=args)
    if key == "saliency":
        return Saliency(forward).attribute(x, abs=False, **common)
    if key == "input_x_gradient":
        return InputXGradient(forward).attribute(x, **common)
    if key == "integrated_gradients":
        return IntegratedGradients(forward).attribute(x, n_steps=32, internal_batch_size=2048, **common)
    if key == "deep_lift":
        return DeepLift(_Module(model)).attribute(x, **common)
    if key == "occlusion":
        return Occlusion(forward).attribute(x, sliding_window_shapes=(1, width), strides=(1, width),
                                            perturbations_per_eval=PERTURBATIONS_PER_EVAL, **common)
    if key == "feature_ablation":
        return FeatureAblation(forward).attribute(x, feature_mask=features,
                                                  perturbations_per_eval=PERTURBATIONS_PER_EVAL, **common)
    if key == "shapley_value_sampling":
        return ShapleyValueSampling(forward).attribute(x, feature_mask=features, n_samples=SHAPLEY_SAMPLES,
                                                       perturbations_per_eval=PERTURBATIONS_PER_EVAL,
                                                       show_progress=False, **common)
    if key == "lime":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Lime(forward).attribute(x, feature_mask=features.expand(x.shape[0], -1, -1).contiguous(),
                                           n_samples=LIME_SAMPLES, perturbations_per_eval=PERTURBATIONS_PER_EVAL,
                                           **common)
    if key in ("gradient_surrogate", "gradient_surrogate_x_input"):
        return GradientLinearSurrogate(forward, multiply_by_inputs=key.endswith("input")).attribute(x, **common)
    if key in ("lrp", "lrp_cons"):
        return LSTMLRP(forward, epsilon=1e-3, bias_factor=float(key == "lrp_cons")).attribute(x, **common)
    assert key == "contextual_decomposition"
    return ContextualDecomposition(forward).attribute(x.detach(), **common).unsqueeze(-1)


@pytest.mark.parametrize("model_name", ["lstm", "cnn"])
def test_the_layer_registry_gives_the_numbers_of_the_embeddings_based_one(model_name):
    """The move to token ids and a named layer is a refactor for the word-level models: every method gives exactly
    the attributions it gave on the embeddings (sampling methods with the same seed), also at given (perturbed)
    layer outputs, as the leaderboard passes them."""
    model = tiny_models()[model_name]
    embeddings = model.embedding(IDS).detach()
    perturbed = embeddings + 0.01 * torch.randn(embeddings.shape, generator=torch.Generator().manual_seed(1),
                                                dtype=embeddings.dtype)
    for key, method in METHODS.items():
        if method.skip_reason(model, model.embedding) is not None:
            continue
        for given in (None, perturbed):
            torch.manual_seed(3)
            ours = method.attribute(model, batch_of(model, layer_output=given), TARGET)
            torch.manual_seed(3)
            theirs = embeddings_based(key, model, embeddings if given is None else given, LENGTHS, TARGET)
            assert torch.equal(ours, theirs), (key, given is not None, float((ours - theirs).abs().max()))


@pytest.mark.parametrize("model_name", ["lstm", "cnn"])
def test_every_applicable_method_gives_finite_scores_and_zero_past_the_end(model_name):
    model = tiny_models()[model_name]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for method in METHODS.values():
        reason = method.skip_reason(model, model.embedding)
        if reason is not None:
            assert (model_name == "lstm" and method.key == "deep_lift" and "LSTM" in reason) or (
                method.key == "transformer_lrp" and "no self-attention" in reason)
            continue
        scores = method.token_scores(model, batch_of(model), TARGET)
        assert scores.shape == (2, 4) and bool(torch.isfinite(scores).all()), method.key
        if method.key not in ("lime",):  # Lime's surrogate may give a padded token a tiny nonzero weight
            assert float(scores[1, 2:].abs().max()) == pytest.approx(0.0, abs=1e-9), method.key
        assert method.reduction in REDUCTIONS
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert all(p.requires_grad for p in model.parameters()) and not model.training


def test_occlusion_and_feature_ablation_agree_with_one_token_windows():
    model = tiny_models()["cnn"]
    batch = batch_of(model, torch.tensor([[2, 3, 4, 5, 6]]), torch.tensor([5]))
    occlusion = METHODS["occlusion"].token_scores(model, batch, torch.tensor([1]))
    ablation = METHODS["feature_ablation"].token_scores(model, batch, torch.tensor([1]))
    assert torch.allclose(occlusion.double(), ablation.double(), atol=1e-6)  # Captum's Occlusion sums in float32


@pytest.mark.parametrize(("surrogate", "captum"), [("gradient_surrogate", "saliency"),
                                                   ("gradient_surrogate_x_input", "input_x_gradient")])
def test_gradient_surrogate_rows_equal_captum_gradient_rows(surrogate, captum):
    model = tiny_models()["lstm"]
    ours = METHODS[surrogate].token_scores(model, batch_of(model), TARGET)
    theirs = METHODS[captum].token_scores(model, batch_of(model), TARGET)
    assert torch.allclose(ours, theirs, atol=1e-12) and bool(ours.abs().max() > 0)


def test_models_without_token_embeddings_are_skipped_with_a_reason():
    model = BagOfWordsMLP(vocab_size=10, num_classes=2)
    assert embedding_layer_name(model) is None
    for method in METHODS.values():
        assert "bag-of-words" in method.skip_reason(model, None)
    explanation = explain(model.eval(), Vocabulary(["<pad>", "<unk>", "a"]), [["a"]], ["n", "p"])
    assert not explanation.records and set(explanation.skipped) == {METHODS[k].label for k in DEFAULT_METHODS}


def test_defaults_and_table():
    assert set(DEFAULT_METHODS) <= set(METHODS)
    rows = method_table()
    assert [r[0] for r in rows] == list(METHODS) and all(r[2] for r in rows)
    assert {k for k, m in METHODS.items() if m.sampling} == {"lime", "shapley_value_sampling"}


def test_deep_lift_is_excluded_where_its_summation_to_delta_breaks():
    """The reason for the exclusion, measured: inside nn.LSTM DeepLift's attributions do not sum to f(x) - f(0),
    while on the CNN (whose nonlinearities are modules) they do."""
    models = tiny_models()
    ids, lengths = torch.tensor([[2, 3, 4, 5], [6, 7, 8, 9]]), torch.tensor([4, 4])
    deltas = {}
    for name, model in models.items():
        embeddings = model.embedding(ids).detach().requires_grad_()
        _, delta = DeepLift(LayerForward(model, model.embedding)).attribute(
            embeddings, target=1, additional_forward_args=(ids, lengths), return_convergence_delta=True)
        deltas[name] = float(delta.abs().max())
    assert deltas["cnn"] < 1e-12 and deltas["lstm"] > 1e-3
    assert METHODS["deep_lift"].skip_reason(models["lstm"], models["lstm"].embedding)
    assert METHODS["deep_lift"].skip_reason(models["cnn"], models["cnn"].embedding) is None


def _vocabulary():
    return Vocabulary(["<pad>", "<unk>", "a", "good", "film", "not", "bad", "plot", "dull", "fun", "it", "was"])


def test_explain_refuses_a_model_in_training_mode_and_never_changes_the_model():
    model = tiny_models()["lstm"]
    model.train()
    with pytest.raises(ValueError, match="evaluation mode"):
        explain(model, _vocabulary(), [["a", "good", "film"]], ["n", "p"])
    assert model.training
    model.eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    explain(model, _vocabulary(), [["a", "good", "film"], ["not", "bad"]], ["n", "p"], methods=list(METHODS))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()) and not model.training
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_explain_names_the_unknown_words_and_their_share():
    model = tiny_models()["lstm"]
    with pytest.warns(TextWarning, match=r"2 of 5 words \(40.0%\) .*<unk>: 'superb', 'cast'"):
        explanation = explain(model, _vocabulary(), [["a", "superb", "film"], ["cast", "fun"]], ["n", "p"],
                              methods=["saliency"])
    assert explanation.records[0].tokens == ["a", "superb", "film"]


def test_batches_give_the_scores_of_one_batch_and_the_same_records():
    model = tiny_models()["lstm"]
    texts = [["a", "good", "film"], ["not", "bad"], ["it", "was", "dull", "plot"], ["fun"]]
    whole = explain(model, _vocabulary(), texts, ["n", "p"], methods=["integrated_gradients", "lrp"])
    batched = explain(model, _vocabulary(), texts, ["n", "p"], methods=["integrated_gradients", "lrp"],
                      batch_size=3, progress=True)
    assert [r.tokens for r in whole.records] == [r.tokens for r in batched.records]
    for one, other in zip(whole.records, batched.records):
        assert torch.allclose(one.scores, other.scores, rtol=1e-10, atol=1e-12)
    assert [len(group) for group in whole.by_text()] == [2] * 4


def _wordpiece_model():
    require_extra("tokenizers")
    require_extra("transformers")
    from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
    from captum_text_ext.models import TransformerClassifier

    words = [["a", "good", "movie"], ["a", "bad", "movie"], ["not", "good"]] * 5
    tokenizer = WordPieceTokenizer.train(words, vocab_size=40)
    torch.manual_seed(0)
    model = TransformerClassifier(vocab_size=len(tokenizer), num_classes=2, hidden_size=8, num_heads=2, max_length=8)
    with torch.no_grad():  # weights larger than BERT's 0.02 initialization, so that the scores are not all ~0
        for parameter in model.parameters():
            parameter.normal_(0, 0.5)
    return model.double().eval(), tokenizer


def test_a_zoo_transformer_is_explained_per_word_or_per_subword():
    model, tokenizer = _wordpiece_model()
    texts = [["a", "goodie", "movie"], ["bad"]]
    methods = ["saliency", "integrated_gradients", "occlusion", "lrp", "contextual_decomposition", "deep_lift",
               "transformer_lrp"]
    words = explain(model, tokenizer, texts, ["n", "p"], methods=methods, unit="word")
    subwords = explain(model, tokenizer, texts, ["n", "p"], methods=methods, unit="subword")
    assert embedding_layer_name(model) == "hf_model.bert.embeddings"
    assert {"LRP", "DeepLift"} <= set(words.skipped) and "BertSelfAttention" in words.skipped["DeepLift"]
    assert "torch.matmul" in words.skipped["LRP"]  # LSTMLRP stops at the attention product; TransformerLRP runs
    assert "CD" not in words.skipped and "TransformerLRP" not in words.skipped  # CD-T and AttnLRP
    assert {record.method for record in words.by_text()[0]} >= {"TransformerLRP", "CD"}
    first_words, first_subwords = words.by_text()[0], subwords.by_text()[0]
    assert first_words[0].tokens == ["a", "goodie", "movie"] and first_words[0].word_ids is None
    assert first_subwords[0].tokens == ["[CLS]", "a", "good", "##ie", "movie", "[SEP]"]
    assert list(first_subwords[0].word_ids) == [-1, 0, 1, 1, 2, -1]
    for per_word, per_subword in zip(first_words, first_subwords):
        if per_word.method == "Saliency":  # an l2 norm per token: it does not add up over subwords
            continue
        s = per_subword.scores
        assert torch.allclose(per_word.scores, torch.stack([s[1], s[2] + s[3], s[4]]), atol=1e-12)
        assert float(s.abs().max()) > 0


def test_texts_longer_than_the_model_reads_are_cut_with_a_warning():
    model, tokenizer = _wordpiece_model()  # max_length 8: [CLS] + 6 subwords + [SEP]
    long_text = ["a", "goodie", "movie", "not", "bad", "movie", "good"]
    with pytest.warns(TextWarning, match="limit of 8 tokens"):
        explanation = explain(model, tokenizer, [long_text], ["n", "p"], methods=["saliency"])
    assert explanation.records[0].tokens == long_text[:5]  # "goodie" is two subwords


class _LengthsReader(nn.Module):
    """A user's encoder that reads a padding mask, wrapped to read ``(token_ids, lengths)`` as the registry does."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, token_ids, lengths):
        return self.model(token_ids, torch.arange(token_ids.shape[1]) >= lengths.unsqueeze(1))


def test_any_model_with_a_named_embedding_layer_is_explained():
    from _transformer_models import UserTransformerClassifier

    torch.manual_seed(0)
    model = _LengthsReader(UserTransformerClassifier(norm_first=True)).double().eval()
    vocabulary = Vocabulary(["<pad>", "<unk>"] + [f"w{i}" for i in range(38)])
    texts = [["w1", "w2", "w3"], ["w4"]]
    assert embedding_layer_name(model) is None  # two nn.Embedding modules and no `embedding(s)` attribute
    with pytest.raises(ValueError, match="has no 'model.nope'.*'model.embeddings.token'"):
        explain(model, vocabulary, texts, ["a", "b", "c"], layer="model.nope")
    assert "layer=" in explain(model, vocabulary, texts, ["a", "b", "c"]).skipped["Saliency"]
    explanation = explain(model, vocabulary, texts, ["a", "b", "c"], methods=["integrated_gradients", "occlusion",
                                                                          "deep_lift"], layer="model.embeddings")
    assert "DeepLift" in explanation.skipped and "MultiheadAttention" in explanation.skipped["DeepLift"]
    scores = explanation.scores("Integrated Gradients")
    assert [s.shape for s in scores] == [(3,), (1,)] and float(scores[0].abs().max()) > 0


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



def test_transformer_lrp_is_the_lrp_row_of_attention_models_only():
    from captum_text_ext.explain import METHODS
    from captum_text_ext.models import LSTMClassifier

    lstm = LSTMClassifier(vocab_size=12, embedding_dim=4, hidden_size=3, num_classes=2).double().eval()
    reason = METHODS["transformer_lrp"].skip_reason(lstm, lstm.embedding)
    assert reason is not None and "no self-attention" in reason and "LSTMLRP" in reason
    model, _ = _wordpiece_model()
    assert METHODS["transformer_lrp"].skip_reason(model, model.get_submodule("hf_model.bert.embeddings")) is None
