import json

import pytest

from captum_text_ext.datasets.vocab import Vocabulary


def test_build_orders_specials_then_frequency_then_alphabet() -> None:
    vocab = Vocabulary.build([["b", "a", "c"], ["a", "c"], ["a"]])
    assert vocab.itos == ["<pad>", "<unk>", "a", "c", "b"]
    assert (vocab.pad_index, vocab.unk_index) == (0, 1)


def test_min_freq_and_max_size() -> None:
    texts = [["a", "a", "a", "b", "b", "c"]]
    assert Vocabulary.build(texts, min_freq=2).itos == ["<pad>", "<unk>", "a", "b"]
    assert Vocabulary.build(texts, max_size=1).itos == ["<pad>", "<unk>", "a"]
    with pytest.raises(ValueError, match="`min_freq` >= 1"):
        Vocabulary.build(texts, min_freq=0)


def test_encode_decode_round_trip_and_unknowns() -> None:
    vocab = Vocabulary.build([["the", "movie", "was", "good"]])
    ids = vocab.encode(["the", "movie", "was", "great"])
    assert ids[-1] == vocab.unk_index
    assert vocab.decode(ids[:3]) == ["the", "movie", "was"]
    with pytest.raises(IndexError, match=r"ids in \[0, 6\)"):
        vocab.decode([6])


def test_save_load_round_trip(tmp_path) -> None:
    vocab = Vocabulary.build([["é", "ñ", "x"]])
    path = tmp_path / "vocab.json"
    vocab.save(path)
    assert Vocabulary.load(path) == vocab
    assert json.loads(path.read_text(encoding="utf-8"))["itos"][:2] == ["<pad>", "<unk>"]


def test_load_refuses_a_non_vocabulary_file(tmp_path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json: not a vocabulary JSON file"):
        Vocabulary.load(path)
    path.write_text('{"tokens": []}', encoding="utf-8")
    with pytest.raises(ValueError, match="an `itos` list"):
        Vocabulary.load(path)


def test_from_itos_keeps_ids_like_a_torchtext_vocabulary() -> None:
    itos = ["<unk>", "<pad>", "the", "a"]  # torchtext's usual order
    vocab = Vocabulary.from_itos(itos)
    assert (vocab.unk_index, vocab.pad_index) == (0, 1)
    assert vocab.encode(["a", "zzz"]) == [3, 0]


def test_invalid_itos_is_refused() -> None:
    with pytest.raises(ValueError, match="'a' appears at ids 2 and 3"):
        Vocabulary(["<pad>", "<unk>", "a", "a"])
    with pytest.raises(ValueError, match="`unk_token` '<unk>' to be in the vocabulary"):
        Vocabulary(["<pad>", "a"])


def test_vocabulary_without_unk_raises_on_unknown_tokens() -> None:
    vocab = Vocabulary(["<pad>", "a"], unk_token=None)
    assert vocab.encode(["a"]) == [1]
    with pytest.raises(KeyError, match="no unk_token"):
        vocab.encode(["b"])
    with pytest.raises(ValueError, match="no unknown token"):
        _ = vocab.unk_index
