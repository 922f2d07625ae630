import pytest
import torch

from captum_text_ext.models import LSTMClassifier


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("pooling", ["last", "max", "mean"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padded_batch_equals_each_sentence_alone(cell: str, pooling: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(
        20, 6, 5, 3, cell=cell, num_layers=2, bidirectional=bidirectional, pooling=pooling
    ).double().eval()
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0], [10, 11, 12, 0, 0]])
    lengths = torch.tensor([5, 2, 3])
    batched = model(ids, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = model(ids[i : i + 1, :n], lengths[i : i + 1])
        assert torch.allclose(batched[i], alone[0], atol=1e-12)


def test_forward_embeddings_is_the_embedding_input_twin() -> None:
    torch.manual_seed(0)
    model = LSTMClassifier(20, 6, 5, 2).eval()
    ids = torch.tensor([[3, 4, 5]])
    assert torch.equal(model(ids), model.forward_embeddings(model.embedding(ids)))


def test_invalid_options_are_refused() -> None:
    with pytest.raises(ValueError, match="`cell` to be 'lstm' or 'gru'"):
        LSTMClassifier(5, 2, 2, 2, cell="rnn")
    with pytest.raises(ValueError, match="`pooling` to be one of"):
        LSTMClassifier(5, 2, 2, 2, pooling="attention")
