import pytest
import torch
from torch.utils.data import DataLoader

from captum_text_ext.datasets.collate import (
    BucketBatchSampler,
    TextCollator,
    lengths_to_mask,
    pad_sequences,
)
from captum_text_ext.datasets.vocab import Vocabulary


def test_pad_sequences_pads_truncates_and_fixes_length() -> None:
    ids, lengths = pad_sequences([[5, 6, 7], [8]], pad_index=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert lengths.tolist() == [3, 1]
    ids, lengths = pad_sequences([[5, 6, 7], [8]], pad_index=0, max_len=2)
    assert ids.tolist() == [[5, 6], [8, 0]] and lengths.tolist() == [2, 1]
    ids, _ = pad_sequences([[5], [8]], pad_index=1, fixed_len=4)
    assert ids.tolist() == [[5, 1, 1, 1], [8, 1, 1, 1]]


def test_pad_sequences_refuses_empty_sequences() -> None:
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        pad_sequences([[1], []], pad_index=0)


def test_lengths_to_mask() -> None:
    mask = lengths_to_mask(torch.tensor([2, 0, 3]), max_len=4)
    assert mask.tolist() == [[True, True, False, False], [False] * 4, [True, True, True, False]]
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        lengths_to_mask(torch.ones(2, 2, dtype=torch.long))


def test_collator_in_a_dataloader() -> None:
    vocab = Vocabulary.build([["a", "b", "c"]])
    data = [(["a", "b", "c"], 1), (["c"], 0), (["b", "zz"], 1)]
    batch = next(iter(DataLoader(data, batch_size=3, collate_fn=TextCollator(vocab))))
    assert batch.token_ids.shape == (3, 3)
    assert batch.lengths.tolist() == [3, 1, 2]
    assert batch.mask.sum(1).tolist() == [3, 1, 2]
    assert batch.labels.tolist() == [1, 0, 1]
    assert batch.token_ids[2, 1] == vocab.unk_index


def test_bucket_sampler_covers_every_index_once_and_is_seeded() -> None:
    lengths = [int(x) for x in torch.randint(1, 40, (503,), generator=torch.Generator().manual_seed(0))]
    sampler = BucketBatchSampler(lengths, batch_size=16, seed=3, bucket_factor=4)
    epoch_one = list(sampler)
    assert sorted(i for batch in epoch_one for i in batch) == list(range(503))
    assert len(epoch_one) == len(sampler)
    assert list(BucketBatchSampler(lengths, batch_size=16, seed=3, bucket_factor=4)) == epoch_one
    assert list(sampler) != epoch_one  # the next epoch is reshuffled
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch_one) / len(epoch_one)
    assert spread < 10  # batches group similar lengths (random batches of 16 would spread over ~35)


def test_bucket_sampler_without_shuffle_is_sorted_within_pools() -> None:
    sampler = BucketBatchSampler([3, 1, 2, 5], batch_size=2, shuffle=False)
    assert list(sampler) == [[1, 2], [0, 3]]
    with pytest.raises(ValueError, match="`batch_size` >= 1"):
        BucketBatchSampler([1], batch_size=0)
