import json
from typing import Any, Dict, List

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_text_ext.models import TextCNN

VOCAB = 30
CASES: Dict[str, Dict[str, Any]] = {
    "stacked": dict(channels=(4, 3, 2), kernel_sizes=(3, 2, 2)),  # R = 5
    "parallel": dict(channels=(3, 3, 2), kernel_sizes=(2, 3, 4), mode="parallel"),  # R = 4
    "stacked-fixed": dict(channels=(4, 3), kernel_sizes=(3, 2), input_length=6),  # R = 4
    "parallel-fixed": dict(channels=(3, 2), kernel_sizes=(2, 3), mode="parallel", input_length=5),  # R = 3
}
LENGTHS = torch.tensor([8, 2, 5, 1])


def _model(case: str) -> TextCNN:
    torch.manual_seed(0)
    return TextCNN(VOCAB, 4, 3, **CASES[case]).double().eval()


def _batch() -> Tensor:
    ids = torch.randint(2, VOCAB, (len(LENGTHS), int(LENGTHS.max())), generator=torch.Generator().manual_seed(1))
    return ids.masked_fill(torch.arange(ids.shape[1]) >= LENGTHS.unsqueeze(1), 0)


def _oracle(model: TextCNN, ids: List[int]) -> Tensor:
    """The sentence alone, zero-padded to max(L, R) (or padded/cropped to input_length), every position pooled."""
    x = model.embedding.weight[ids]
    width = model.input_length if model.input_length is not None else max(len(ids), model.receptive_field)
    x = F.pad(x[:width], (0, 0, 0, width - min(len(ids), width))).T.unsqueeze(0)
    if model.mode == "stacked":
        for conv in model.conv_layers:
            x = torch.relu(F.conv1d(x, conv.weight, conv.bias))
        features = x.amax(dim=-1)
    else:
        features = torch.cat([torch.relu(F.conv1d(x, c.weight, c.bias)).amax(dim=-1) for c in model.conv_layers], 1)
    return F.linear(features, model.output.weight, model.output.bias)[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_padded_batch_equals_each_sentence_alone(case: str) -> None:
    model, ids = _model(case), _batch()
    batched = model(ids, LENGTHS)
    assert batched.shape == (len(LENGTHS), 3)
    for i, n in enumerate(LENGTHS.tolist()):
        assert torch.allclose(batched[i], model(ids[i : i + 1, :n])[0], rtol=0, atol=1e-10)
        assert torch.allclose(batched[i], model(ids[i : i + 1, :n], LENGTHS[i : i + 1])[0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_a_naive_per_sentence_oracle(case: str) -> None:
    model, ids = _model(case), _batch()
    batched = model(ids, LENGTHS)
    for i, n in enumerate(LENGTHS.tolist()):
        assert torch.allclose(batched[i], _oracle(model, ids[i, :n].tolist()), rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", sorted(CASES))
def test_padding_positions_never_change_the_output(case: str) -> None:
    model, ids = _model(case), _batch()
    padding = torch.arange(ids.shape[1]) >= LENGTHS.unsqueeze(1)
    noisy = ids.clone()
    noisy[padding] = torch.randint(0, VOCAB, (int(padding.sum()),), generator=torch.Generator().manual_seed(2))
    assert not torch.equal(noisy, ids)
    assert torch.equal(model(noisy, LENGTHS), model(ids, LENGTHS))
    embeddings = model.embedding(ids).detach()
    noisy_embeddings = embeddings + 5 * padding.unsqueeze(-1)
    expected = model.forward_embeddings(embeddings, LENGTHS)
    assert torch.equal(model.forward_embeddings(noisy_embeddings, LENGTHS), expected)


@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_embeddings_is_the_embedding_input_twin(case: str) -> None:
    model, ids = _model(case), _batch()
    assert torch.equal(model(ids, LENGTHS), model.forward_embeddings(model.embedding(ids), LENGTHS))
    assert torch.equal(model(ids), model.forward_embeddings(model.embedding(ids)))


def test_sentences_shorter_than_the_receptive_field_work() -> None:
    model = _model("stacked")
    assert model.receptive_field == 5
    for n in (1, 2, 4):
        ids = torch.arange(2, 2 + n).unsqueeze(0)
        logits = model(ids)
        assert logits.shape == (1, 3) and torch.isfinite(logits).all()
        assert torch.allclose(logits[0], _oracle(model, ids[0].tolist()), rtol=0, atol=1e-10)


def test_pooling_reads_only_windows_inside_the_sentence() -> None:
    # A long sentence in a batch with a longer one: its logits come from its own windows only, which the oracle
    # reproduces without any padding; reading a window that overlaps the padding would add relu(bias) terms.
    model = _model("stacked")
    with torch.no_grad():
        for conv in model.conv_layers:
            conv.bias.fill_(3.0)
    ids = torch.tensor([[2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [12, 13, 14, 15, 16, 17, 0, 0, 0, 0]])
    batched = model(ids, torch.tensor([10, 6]))
    assert torch.allclose(batched[1], _oracle(model, [12, 13, 14, 15, 16, 17]), rtol=0, atol=1e-10)


def test_fixed_input_length_pads_with_the_pad_embedding_or_crops() -> None:
    model = _model("stacked-fixed")
    ids = torch.tensor([[2, 3, 4]])
    assert torch.equal(model(ids), model(torch.tensor([[2, 3, 4, 0, 0, 0]])))
    long_ids = torch.arange(2, 12).unsqueeze(0)
    assert torch.equal(model(long_ids), model(long_ids[:, :6]))
    assert torch.equal(model(long_ids, torch.tensor([10])), model(long_ids[:, :6]))


def _layers(model: TextCNN) -> List[tuple]:
    return [(c.in_channels, c.out_channels, c.kernel_size[0], c.padding[0], c.stride[0]) for c in model.conv_layers]


def test_yuan_mr_preset_is_table_2() -> None:
    model = TextCNN.yuan_mr(vocab_size=50, embedding_dim=8)
    assert _layers(model) == [(8, 128, 5, 0, 1), (128, 64, 5, 0, 1), (64, 32, 5, 0, 1)]
    assert (model.mode, model.input_length, model.receptive_field) == ("stacked", 56, 13)
    assert model.output.in_features == 32 and model.output.out_features == 2
    assert model.eval()(torch.tensor([[2, 3, 4]])).shape == (1, 2)


def test_yuan_agnews_preset_is_table_2_and_may_read_batches_at_their_length() -> None:
    model = TextCNN.yuan_agnews(vocab_size=50, embedding_dim=8)
    assert _layers(model) == [(8, 512, 5, 0, 1), (512, 256, 5, 0, 1), (256, 128, 5, 0, 1), (128, 64, 5, 0, 1)]
    assert (model.input_length, model.receptive_field, model.output.out_features) == (195, 17, 4)
    free = TextCNN.yuan_agnews(vocab_size=50, embedding_dim=8, input_length=None).eval()
    assert free.input_length is None
    ids = torch.randint(2, 50, (3, 30), generator=torch.Generator().manual_seed(0))
    assert free(ids, torch.tensor([30, 12, 3])).shape == (3, 4)


def test_kim_preset() -> None:
    model = TextCNN.kim(vocab_size=50, embedding_dim=8, num_classes=5)
    assert _layers(model) == [(8, 100, 3, 0, 1), (8, 100, 4, 0, 1), (8, 100, 5, 0, 1)]
    assert (model.mode, model.input_length, model.receptive_field, model.dropout.p) == ("parallel", None, 5, 0.5)
    assert model.output.in_features == 300 and model.output.out_features == 5


def test_activations_are_hookable_relu_modules() -> None:
    model = _model("stacked")
    assert isinstance(model.conv_layers, nn.ModuleList) and all(isinstance(c, nn.Conv1d) for c in model.conv_layers)
    assert len(model.activations) == len(model.conv_layers)
    assert all(isinstance(a, nn.ReLU) for a in model.activations)
    seen: List[tuple] = []
    handles = [a.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape))) for a in model.activations]
    model(torch.tensor([[2, 3, 4, 5, 6, 7]]))
    for handle in handles:
        handle.remove()
    assert seen == [(1, 4, 4), (1, 3, 3), (1, 2, 2)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_is_plain_and_rebuilds_an_identical_model(case: str) -> None:
    model = _model(case).float()
    assert json.loads(json.dumps(model.config)) == model.config
    torch.manual_seed(0)
    clone = TextCNN(**model.config)
    assert repr(clone) == repr(model)
    assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), model.state_dict().values()))
    preset = TextCNN.yuan_mr(vocab_size=10, embedding_dim=4)
    assert repr(TextCNN(**preset.config)) == repr(preset)


def test_reset_parameters_reinitialises_and_zeroes_the_pad_embedding() -> None:
    model = _model("parallel")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(1.0)
    model.reset_parameters()
    assert torch.equal(model.embedding.weight[0], torch.zeros(4, dtype=torch.float64))
    assert not torch.equal(model.conv_layers[0].weight, torch.ones_like(model.conv_layers[0].weight))
    assert not torch.equal(model.output.weight, torch.ones_like(model.output.weight))


def test_extra_repr() -> None:
    assert "mode='parallel', receptive_field=4, input_length=None" in repr(_model("parallel"))


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="`mode` to be one of"):
        TextCNN(10, 4, 2, mode="deep")
    with pytest.raises(ValueError, match="same length, but got 2 channels and 1 kernel sizes"):
        TextCNN(10, 4, 2, channels=(3, 2), kernel_sizes=(3,))
    with pytest.raises(ValueError, match="non-empty"):
        TextCNN(10, 4, 2, channels=(), kernel_sizes=())
    with pytest.raises(ValueError, match="positive `channels` and `kernel_sizes`"):
        TextCNN(10, 4, 2, channels=(3,), kernel_sizes=(0,))
    with pytest.raises(ValueError, match=r"`input_length` >= the receptive field 13 or None, but got 12"):
        TextCNN.yuan_mr(10, embedding_dim=4, input_length=12)
    model = _model("stacked")
    with pytest.raises(ValueError, match=r"`lengths` in \[1, 3\] \(the padded batch has 3 steps\), but got \[4\]"):
        model(torch.tensor([[2, 3, 4]]), torch.tensor([4]))
    with pytest.raises(ValueError, match=r"`lengths` to have shape \(1,\), but got \(2,\)"):
        model(torch.tensor([[2, 3, 4]]), torch.tensor([3, 3]))


def test_embedding_and_conv_dropout_act_in_training_only() -> None:
    torch.manual_seed(0)
    model = TextCNN(VOCAB, 4, 3, channels=(4, 3), kernel_sizes=(3, 2), embedding_dropout=0.5, conv_dropout=0.5)
    plain = TextCNN(VOCAB, 4, 3, channels=(4, 3), kernel_sizes=(3, 2))
    plain.load_state_dict(model.state_dict())
    ids, lengths = _batch(), LENGTHS
    model.eval()
    torch.testing.assert_close(model(ids, lengths), plain.eval()(ids, lengths))
    model.train()
    torch.manual_seed(1)
    first = model(ids, lengths)
    torch.manual_seed(2)
    assert not torch.allclose(first, model(ids, lengths))
    assert model.config["embedding_dropout"] == 0.5 and model.config["conv_dropout"] == 0.5
