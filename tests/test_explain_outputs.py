"""What the registry's methods explain (:mod:`captum_text_ext.explain.outputs`): the target logit by default, and the
logit difference for every method alike, checked against each method run on a model whose output layer computes the
difference itself."""

from __future__ import annotations

import copy

import pytest
import torch

from captum_text_ext.datasets import Vocabulary
from captum_text_ext.explain import METHODS, OUTPUTS, ContrastedOutput, LayerBatch, explain, largest_other_class
from captum_text_ext.models import LSTMClassifier, TextCNN

IDS = torch.tensor([[2, 3, 4, 5], [6, 7, 0, 0]])
LENGTHS = torch.tensor([4, 2])


def tiny(architecture: str, classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if architecture == "lstm":
        model = LSTMClassifier(vocab_size=12, embedding_dim=4, hidden_size=3, num_classes=classes)
    else:
        model = TextCNN(vocab_size=12, embedding_dim=4, num_classes=classes, channels=(3,), kernel_sizes=(2,))
    with torch.no_grad():  # logits far from LRP's ε = 1e-3 (see RELATIVE)
        model.output.weight.mul_(100)
        model.output.bias.mul_(100)
    return model.double().eval()


def differenced(model: torch.nn.Module, target: int, contrast: int) -> torch.nn.Module:
    """A copy of ``model`` whose logit ``target`` is the original's ``z_target - z_contrast`` (its output layer's
    row and bias differenced)."""
    copied = copy.deepcopy(model)
    with torch.no_grad():
        weight, bias = model.output.weight, model.output.bias
        copied.output.weight[target] = weight[target] - weight[contrast]
        copied.output.bias[target] = bias[target] - bias[contrast]
    return copied


def scores(key: str, model: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor, target: torch.Tensor,
           output: str) -> torch.Tensor:
    torch.manual_seed(3)  # Lime and ShapleyValueSampling draw the same samples
    batch = LayerBatch(model.embedding, ids, lengths, model.output.out_features, output=output)
    return METHODS[key].token_scores(model, batch, target)


# LRP's ε-stabilizer divides each relevance by z + ε·sign(z): the difference of two LRP runs starts from
# (z_t, -z_o) and the differenced model from z_t - z_o, which differ by O(ε / |z|) relative (ε = 1e-3; the tiny
# models' output layers are scaled so that |z| is large)
RELATIVE = {"lrp": 1e-2, "lrp_cons": 1e-2}


@pytest.mark.parametrize(("architecture", "classes"), [("lstm", 2), ("cnn", 3)])
def test_every_method_explains_the_logit_difference_as_a_model_computing_it_would(architecture, classes):
    model = tiny(architecture, classes)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        logits = model(IDS, LENGTHS)
    for key, method in METHODS.items():
        if method.skip_reason(model, model.embedding) is not None:
            continue
        for row in range(IDS.shape[0]):
            length = int(LENGTHS[row])
            ids, lengths = IDS[row : row + 1, :length], LENGTHS[row : row + 1]
            for target in range(classes):
                others = [c for c in range(classes) if c != target]
                contrast = max(others, key=lambda c: float(logits[row, c]))
                wanted = torch.tensor([target])
                ours = scores(key, model, ids, lengths, wanted, "logit_difference")
                theirs = scores(key, differenced(model, target, contrast), ids, lengths, wanted, "logit")
                tolerance = RELATIVE.get(key, 1e-9) * float(theirs.abs().max()) + 1e-12
                assert float((ours - theirs).abs().max()) <= tolerance, (key, row, target)
                assert float(ours.abs().max()) > 0, key
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("architecture", ["lstm", "cnn"])
def test_each_example_of_a_batch_keeps_its_own_contrast_class(architecture):
    """Captum expands the contrast with the batch (path steps, perturbed copies): a batch whose examples contrast
    with different classes gives every example the scores it gets alone."""
    model = tiny(architecture, 3)
    ids, lengths = torch.tensor([[2, 3, 4, 5], [6, 7, 8, 0], [9, 10, 11, 2]]), torch.tensor([4, 3, 4])
    target = torch.tensor([0, 0, 1])
    with torch.no_grad():
        contrast = largest_other_class(model(ids, lengths), target)
    assert len(set(contrast.tolist())) > 1  # the batch mixes contrast classes
    for key, method in METHODS.items():
        if method.skip_reason(model, model.embedding) is not None or key == "lime":  # Lime draws per example
            continue
        together = scores(key, model, ids, lengths, target, "logit_difference")
        for row in range(3):
            alone = scores(key, model, ids[row : row + 1], lengths[row : row + 1], target[row : row + 1],
                           "logit_difference")
            assert torch.allclose(together[row], alone[0], atol=1e-10), (key, row)


def test_the_target_logit_is_the_default_for_every_method_cd_included():
    """By default only the target's logit is explained: zeroing the other class's output row changes nothing (it
    changed CD's scores when CD scored β_target − β_other); then the logit difference is the target logit too."""
    model = tiny("lstm", 2)
    silenced = copy.deepcopy(model)
    with torch.no_grad():
        silenced.output.weight[0].zero_()
        silenced.output.bias[0].zero_()
    target = torch.tensor([1, 1])
    for key in METHODS:
        if METHODS[key].skip_reason(model, model.embedding) is not None:
            continue
        default = scores(key, model, IDS, LENGTHS, target, "logit")
        assert torch.allclose(default, scores(key, silenced, IDS, LENGTHS, target, "logit"), atol=1e-12), key
        difference = scores(key, silenced, IDS, LENGTHS, target, "logit_difference")
        assert torch.allclose(default, difference, rtol=RELATIVE.get(key, 1e-9), atol=1e-12), key
        assert not torch.allclose(default, scores(key, model, IDS, LENGTHS, target, "logit_difference")), key


def test_largest_other_class_and_the_contrasted_forward():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 5.0], [1.0, 1.0, 0.0]])
    assert largest_other_class(logits, torch.tensor([0, 0, 1])).tolist() == [2, 1, 0]  # ties: the lowest index
    contrasted = ContrastedOutput(lambda x: x)(logits, torch.tensor([2, 1, 0]))
    assert torch.equal(contrasted, logits - logits[[0, 1, 2], [2, 1, 0]].view(-1, 1))
    with pytest.raises(ValueError, match="C >= 2"):
        largest_other_class(torch.zeros(2, 1), torch.tensor([0, 0]))
    with pytest.raises(TypeError, match="contrast classes"):
        ContrastedOutput(lambda x, y: x)(logits, [2, 1, 0])
    with pytest.raises(ValueError, match="one contrast class per example"):
        ContrastedOutput(lambda x: x)(logits, torch.tensor([2, 1]))


def test_settings_are_checked_and_stated():
    model = tiny("lstm", 2)
    with pytest.raises(ValueError, match="`output` to be one of"):
        LayerBatch(model.embedding, IDS, LENGTHS, 2, output="probability")
    with pytest.raises(ValueError, match="at least two classes"):
        LayerBatch(model.embedding, IDS, LENGTHS, 1, output="logit_difference")
    assert set(OUTPUTS) == {"logit", "logit_difference"}
    assert "bias_product='phrase'" in METHODS["contextual_decomposition"].description


def test_explain_passes_the_output_to_every_method():
    model = tiny("lstm", 3)
    vocabulary = Vocabulary(["<pad>", "<unk>", "a", "good", "film"])
    texts, names = [["a", "good", "film"]], ["n", "m", "p"]
    difference = explain(model, vocabulary, texts, names, methods=["saliency", "lrp"], target=0,
                         output="logit_difference")
    logit = explain(model, vocabulary, texts, names, methods=["saliency", "lrp"], target=0)
    ids = torch.tensor([[2, 3, 4]])
    with torch.no_grad():
        contrast = int(largest_other_class(model(ids, torch.tensor([3])), torch.tensor([0])))
    expected = scores("saliency", differenced(model, 0, contrast), ids, torch.tensor([3]), torch.tensor([0]), "logit")
    assert torch.allclose(difference.scores("Saliency")[0], expected[0])
    assert not torch.allclose(difference.scores("Saliency")[0], logit.scores("Saliency")[0])
    with pytest.raises(ValueError, match="`output` to be one of"):
        explain(model, vocabulary, texts, names, output="margin")
