import torch
from torch.utils.data import DataLoader

from captum_text_ext.datasets.collate import TextCollator
from captum_text_ext.datasets.vocab import Vocabulary
from captum_text_ext.models import LSTMClassifier, accuracy, fit


def _toy_data():
    pos = [(["good", "film"], 1), (["great", "film", "indeed"], 1), (["good"], 1)] * 10
    neg = [(["bad", "film"], 0), (["awful", "film", "indeed"], 0), (["bad"], 0)] * 10
    return pos + neg


def _train(seed: int):
    data = _toy_data()
    vocab = Vocabulary.build(tokens for tokens, _ in data)
    loader = DataLoader(data, batch_size=8, shuffle=False, collate_fn=TextCollator(vocab))
    torch.manual_seed(seed)
    model = LSTMClassifier(len(vocab), 8, 8, 2)
    result = fit(model, loader, loader, epochs=15, lr=0.05, patience=5, seed=seed, progress=False)
    return model, loader, result


def test_fit_learns_keeps_best_epoch_and_is_seeded() -> None:
    model, loader, result = _train(seed=0)
    assert accuracy(model, loader) == 1.0
    assert result.best_dev_accuracy == 1.0
    assert result.dev_accuracy[result.best_epoch - 1] == result.best_dev_accuracy
    assert not model.training
    again, _, _ = _train(seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
