import pytest
import torch

from captum_text_ext.datasets.subwords import NO_WORD, aggregate_subword_scores, word_ids_tensor


def test_word_ids_tensor_pads_with_no_word_and_refuses_bad_ids() -> None:
    ids = word_ids_tensor([[None, 0, 1, 1, None], [None, 0, None]], width=6)
    assert ids.dtype == torch.long
    assert ids.tolist() == [[-1, 0, 1, 1, -1, -1], [-1, 0, -1, -1, -1, -1]]
    assert word_ids_tensor([]).shape == (0, 0)
    with pytest.raises(ValueError, match="at most `width`=2 word ids per sentence, but a sentence has 3"):
        word_ids_tensor([[None, 0, None]], width=2)
    with pytest.raises(ValueError, match=r"word ids >= 0 or None, but sentence 0 has \[0, -2\]"):
        word_ids_tensor([[0, -2]])


def test_scores_of_a_word_are_the_sum_of_its_subwords_specials_and_padding_left_out() -> None:
    generator = torch.Generator().manual_seed(0)
    word_ids = word_ids_tensor([[None, 0, 1, 1, 1, 2, None], [None, 0, 0, 1, None]], width=7)
    scores = torch.randn(2, 7, generator=generator, dtype=torch.float64)
    words = aggregate_subword_scores(scores, word_ids)
    assert words.shape == (2, 3) and words.dtype == torch.float64
    expected = [[scores[0, 1], scores[0, 2:5].sum(), scores[0, 5]], [scores[1, 1:3].sum(), scores[1, 3], 0.0]]
    assert torch.allclose(words, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-15)
    assert torch.allclose(words.sum(1), (scores * (word_ids != NO_WORD)).sum(1), rtol=0, atol=1e-15)


def test_trailing_dimensions_are_kept_and_nan_at_padding_does_not_leak() -> None:
    word_ids = word_ids_tensor([[None, 0, 1, 1, None, None]])
    scores = torch.arange(6 * 4, dtype=torch.float64).reshape(1, 6, 4)
    scores[0, 5] = float("nan")  # e.g. a masked position of some method
    words = aggregate_subword_scores(scores, word_ids)
    assert words.shape == (1, 2, 4)
    assert torch.equal(words[0, 0], scores[0, 1]) and torch.equal(words[0, 1], scores[0, 2] + scores[0, 3])


def test_aggregation_is_differentiable() -> None:
    scores = torch.ones(1, 4, dtype=torch.float64, requires_grad=True)
    aggregate_subword_scores(scores, word_ids_tensor([[None, 0, 0, None]]))[0, 0].backward()
    assert scores.grad.tolist() == [[0.0, 1.0, 1.0, 0.0]]


def test_bad_shapes_and_gaps_are_refused() -> None:
    with pytest.raises(ValueError, match=r"`scores` of shape \(N, T, ...\) and `word_ids` of shape \(N, T\)"):
        aggregate_subword_scores(torch.zeros(2, 5), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"Sentence 1 has no subword for word\(s\) \[1\]"):
        aggregate_subword_scores(torch.zeros(2, 4), torch.tensor([[-1, 0, 1, -1], [-1, 0, 2, -1]]))
    with pytest.raises(ValueError, match="word ids >= 0 or -1"):
        aggregate_subword_scores(torch.zeros(1, 3), torch.tensor([[-1, 0, -3]]))


def test_a_batch_without_words_gives_no_columns() -> None:
    assert aggregate_subword_scores(torch.zeros(2, 3), torch.full((2, 3), NO_WORD)).shape == (2, 0)
