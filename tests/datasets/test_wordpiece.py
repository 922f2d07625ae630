from typing import List, Sequence

import pytest
import torch
from _transformer_models import require_extra

from captum_text_ext.datasets import TextBatch, load_synthetic
from captum_text_ext.datasets.subwords import NO_WORD, aggregate_subword_scores
from captum_text_ext.datasets.wordpiece import FORMAT, SPECIAL_TOKENS, WordPieceTokenizer

TEXTS = [["a", "good", "movie"], ["a", "bad", "movie"], ["not", "good"]] * 5


@pytest.fixture(autouse=True)
def _tokenizers() -> None:
    require_extra("tokenizers")


def _corpus() -> List[Sequence[str]]:
    return [example.tokens for example in load_synthetic("train", n=2000, seed=0)]


def test_training_is_deterministic() -> None:
    # tokenizers' own trainer learns different vocabularies from run to run on this corpus (tokenizers#1794)
    corpus = _corpus()
    first = WordPieceTokenizer.train(corpus, vocab_size=200)
    for _ in range(5):
        assert WordPieceTokenizer.train(corpus, vocab_size=200).itos == first.itos


def test_specials_come_first_and_every_character_is_spelled() -> None:
    tokenizer = WordPieceTokenizer.train(_corpus(), vocab_size=250)
    assert len(tokenizer) == 250 and tokenizer.itos[:5] == list(SPECIAL_TOKENS)
    assert (tokenizer.pad_index, tokenizer.unk_index, tokenizer.special_indices) == (0, 1, [0, 1, 2, 3, 4])
    assert (tokenizer.pad_token, tokenizer.unk_token) == ("[PAD]", "[UNK]")
    characters = {char for words in _corpus() for word in words for char in word}
    assert {f"##{char}" for char in characters} <= set(tokenizer.itos) and characters <= set(tokenizer.itos)
    batch = tokenizer.encode_batch(_corpus()[:200])
    assert not (batch.token_ids == tokenizer.unk_index).any()
    assert (batch.word_ids != NO_WORD).sum() > sum(len(words) for words in _corpus()[:200])  # some words split


def test_encode_batch_frames_pads_and_maps_subwords_to_words() -> None:
    tokenizer = WordPieceTokenizer.train(TEXTS, vocab_size=40)
    batch = tokenizer.encode_batch([["a", "goodie", "movie"], ["Bad"], ["a", "movies"]])
    assert batch.tokens == [
        ["[CLS]", "a", "good", "##ie", "movie", "[SEP]"],
        ["[CLS]", "bad", "[SEP]"],  # lowercased by the BERT normalizer
        ["[CLS]", "a", "[UNK]", "[SEP]"],  # "s" was never seen: the whole word is unknown, still word 1
    ]
    assert batch.token_ids.shape == (3, 6) and batch.token_ids.dtype == torch.long
    assert tokenizer.decode(batch.token_ids[0]) == batch.tokens[0]
    assert tokenizer.decode(batch.token_ids[1]) == batch.tokens[1] + ["[PAD]"] * 3
    assert batch.lengths.tolist() == [6, 3, 4]
    assert batch.attention_mask.tolist()[2] == [1, 1, 1, 1, 0, 0]
    assert batch.word_ids.tolist() == [[-1, 0, 1, 1, 2, -1], [-1, 0, -1, -1, -1, -1], [-1, 0, 1, -1, -1, -1]]
    scores = torch.arange(18, dtype=torch.float64).reshape(3, 6)
    assert aggregate_subword_scores(scores, batch.word_ids).tolist() == [[1, 5, 4], [7, 0, 0], [13, 14, 0]]


def test_collate_gives_a_text_batch_of_subword_ids() -> None:
    tokenizer = WordPieceTokenizer.train(TEXTS, vocab_size=40)
    batch = tokenizer.collate([(["a", "goodie"], 1), (["bad"], 0)])
    assert isinstance(batch, TextBatch)
    assert batch.token_ids.tolist() == tokenizer.encode_batch([["a", "goodie"], ["bad"]]).token_ids.tolist()
    assert batch.lengths.tolist() == [5, 3] and batch.labels.tolist() == [1, 0]
    assert batch.mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]


def test_words_that_cannot_be_scored_are_refused() -> None:
    tokenizer = WordPieceTokenizer.train(TEXTS, vocab_size=40)
    with pytest.raises(ValueError, match="at least one word, but sentence 1 is empty"):
        tokenizer.encode_batch([["a"], []])
    with pytest.raises(ValueError, match=r"Sentence 0: the word\(s\) \['\\x00'\] yield no subword token"):
        tokenizer.encode_batch([["a", "\x00", "movie"]])  # the BERT normalizer removes control characters


def test_round_trip_through_a_plain_dict() -> None:
    tokenizer = WordPieceTokenizer.train(TEXTS, vocab_size=40)
    data = tokenizer.to_dict()
    assert set(data) == {"format", "tokenizer"} and data["format"] == FORMAT
    assert all(isinstance(value, str) for value in data.values())
    loaded = WordPieceTokenizer.from_dict(data)
    assert loaded == tokenizer and loaded.itos == tokenizer.itos and repr(loaded) == "WordPieceTokenizer(size=38)"
    words = [["not", "a", "goodie"]]
    assert torch.equal(loaded.encode_batch(words).token_ids, tokenizer.encode_batch(words).token_ids)
    assert tokenizer != WordPieceTokenizer.train(TEXTS, vocab_size=30)
    with pytest.raises(ValueError, match="format 'tokenizers.json' and a `tokenizer` string, but got keys"):
        WordPieceTokenizer.from_dict({"itos": ["[PAD]"]})
    with pytest.raises(ValueError, match="JSON of a `tokenizers` tokenizer, but it does not load"):
        WordPieceTokenizer.from_json('{"not": "a tokenizer"}')


def test_tokenizers_that_would_pad_truncate_or_lack_specials_are_refused() -> None:
    tokenizer = WordPieceTokenizer.train(TEXTS, vocab_size=40).tokenizer
    tokenizer.enable_truncation(max_length=4)
    with pytest.raises(ValueError, match=r"without truncation .* call `tokenizer.no_truncation\(\)` first"):
        WordPieceTokenizer(tokenizer)
    tokenizer.no_truncation()
    tokenizer.enable_padding()
    with pytest.raises(ValueError, match=r"without padding .* call `tokenizer.no_padding\(\)` first"):
        WordPieceTokenizer(tokenizer)
    tokenizers = require_extra("tokenizers")
    bare = tokenizers.Tokenizer(tokenizers.models.WordPiece({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    with pytest.raises(ValueError, match=r"lacks \['\[PAD\]', '\[CLS\]', '\[SEP\]', '\[MASK\]'\]"):
        WordPieceTokenizer(bare)
    specials = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    gapped = tokenizers.Tokenizer(tokenizers.models.WordPiece({**specials, "a": 7}, unk_token="[UNK]"))
    with pytest.raises(ValueError, match=r"ids run 0, 1, … without gaps, but no token has ids \[5, 6\]"):
        WordPieceTokenizer(gapped)


def test_training_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="`vocab_size` > 5"):
        WordPieceTokenizer.train(TEXTS, vocab_size=5)
    with pytest.raises(ValueError, match="`min_frequency` >= 1"):
        WordPieceTokenizer.train(TEXTS, vocab_size=40, min_frequency=0)


def test_transformers_reads_the_same_tokenizer() -> None:
    transformers = require_extra()
    tokenizer = WordPieceTokenizer.train(TEXTS, vocab_size=40)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer.tokenizer, pad_token="[PAD]")
    encoded = fast([["a", "goodie"], ["bad"]], is_split_into_words=True, padding=True, return_tensors="pt")
    ours = tokenizer.encode_batch([["a", "goodie"], ["bad"]])
    assert torch.equal(encoded["input_ids"], ours.token_ids)
    assert torch.equal(encoded["attention_mask"], ours.attention_mask)
    assert encoded.word_ids(0) == [None, 0, 1, 1, None]
    assert tokenizer.tokenizer.padding is None  # the wrapped tokenizer was not changed
