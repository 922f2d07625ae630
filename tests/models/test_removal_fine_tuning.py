"""Fine-tuning with random token removal (F-Fidelity style): the removal masks, what the fine-tuning trains on, and
that the user's model is left as it was."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest
import torch
from torch import Tensor, nn

from captum_text_ext.datasets.collate import TextBatch
from captum_text_ext.models import LSTMClassifier
from captum_text_ext.models.checkpoints import load_checkpoint
from captum_text_ext.models.removal_fine_tuning import fine_tune_with_removal, random_removal_mask
from captum_text_ext.models.zoo import checkpoint_path, fine_tune_zoo_model_with_removal


def test_removal_mask_draws_a_uniform_count_of_uniform_positions_and_never_padding() -> None:
    lengths = torch.tensor([3, 5, 0, 1]).repeat(5000)
    mask = random_removal_mask(lengths, 6, torch.Generator().manual_seed(0))
    assert mask.shape == (20000, 6) and mask.dtype == torch.bool
    assert not bool(mask[torch.arange(6)[None, :] >= lengths[:, None]].any())  # padding never removed
    counts = mask.sum(1)
    for length in (3, 5, 1):
        rows = counts[lengths == length]
        shares = torch.bincount(rows, minlength=length + 1).double() / len(rows)
        assert len(shares) == length + 1  # no count above the length
        assert torch.allclose(shares, torch.full_like(shares, 1 / (length + 1)), atol=0.03)
        # each position is removed with probability E[K] / L = 1/2
        positions = mask[lengths == length][:, :length].double().mean(0)
        assert torch.allclose(positions, torch.full_like(positions, 0.5), atol=0.03)


def test_removal_mask_is_seeded_and_refuses_lengths_outside_the_width() -> None:
    lengths = torch.tensor([4, 2, 7])
    first = random_removal_mask(lengths, 7, torch.Generator().manual_seed(3))
    assert torch.equal(first, random_removal_mask(lengths, 7, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match=r"lengths \(N,\) in \[0, 5\]"):
        random_removal_mask(lengths, 5)
    with pytest.raises(ValueError, match="lengths"):
        random_removal_mask(torch.tensor([-1]), 5)


class _Spy(LSTMClassifier):
    """Records the embeddings its forward pass reads."""

    def __init__(self) -> None:
        super().__init__(vocab_size=12, embedding_dim=4, hidden_size=5, num_classes=2, padding_idx=None)
        self.seen: List[Tensor] = []

    def forward_embeddings(self, embeddings: Tensor, lengths: Tensor) -> Tensor:
        self.seen.append(embeddings.detach().clone())
        return super().forward_embeddings(embeddings, lengths)


def _batches() -> List[TextBatch]:
    generator = torch.Generator().manual_seed(0)
    token_ids = torch.randint(1, 12, (32, 6), generator=generator)
    lengths = torch.randint(1, 7, (32,), generator=generator)
    mask = torch.arange(6)[None, :] < lengths[:, None]
    token_ids[~mask] = 0
    labels = (token_ids == 3).any(1).long()
    return [TextBatch(token_ids[i:i + 8], lengths[i:i + 8], mask[i:i + 8], labels[i:i + 8]) for i in range(0, 32, 8)]


def test_fine_tuning_trains_a_copy_on_removed_tokens_with_the_embedding_frozen() -> None:
    torch.manual_seed(0)
    model = _Spy()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    tuned, history = fine_tune_with_removal(model, _batches(), lr=1e-2, epochs=2, seed=0, progress=False)
    assert isinstance(tuned, _Spy) and tuned is not model and not tuned.training
    assert history.epochs_run == 2 and len(history.train_loss) == 2
    # the user's model: weights, mode and flags as they were (the fine-tuning reseeds torch, as training does)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(p.requires_grad for p in model.parameters()) and not model.seen
    assert all(p.requires_grad for p in tuned.parameters())
    assert torch.equal(tuned.embedding.weight, model.embedding.weight)  # frozen
    assert not torch.equal(tuned.output.weight, model.output.weight)
    # it trained on inputs with whole token embeddings zeroed (no padding_idx: a zero row is a removed token), about
    # half of the real tokens (E[K] = L / 2)
    assert len(tuned.seen) == 8  # 4 batches x 2 epochs, no dev pass
    removed = sum(int((seen.abs().sum(-1) == 0).sum()) for seen in tuned.seen)
    tokens = 2 * sum(int(batch.lengths.sum()) for batch in _batches())
    assert 0.3 * tokens < removed < 0.7 * tokens
    again, _ = fine_tune_with_removal(model, _batches(), lr=1e-2, epochs=2, seed=0, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), again.state_dict().values()))


def test_fine_tuning_refuses_a_model_without_forward_embeddings() -> None:
    model = nn.Sequential(nn.Embedding(5, 2), nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(TypeError, match="forward_embeddings"):
        fine_tune_with_removal(model, [], lr=1e-3)


def test_zoo_fine_tuning_uses_the_zoo_recipe_and_refuses_other_checkpoints(synthetic_zoo: dict,
                                                                           tmp_path: Path) -> None:
    checkpoint = load_checkpoint(checkpoint_path("lstm-synthetic", synthetic_zoo["cache"]))
    tuned, history = fine_tune_zoo_model_with_removal(checkpoint, progress=False)
    assert history.epochs_run == 1 and type(tuned) is type(checkpoint.model)
    assert torch.equal(tuned.get_submodule("embedding").weight, checkpoint.model.get_submodule("embedding").weight)
    checkpoint.metadata["zoo_name"] = "my-model"
    with pytest.raises(ValueError, match="zoo model's checkpoint"):
        fine_tune_zoo_model_with_removal(checkpoint, progress=False)
