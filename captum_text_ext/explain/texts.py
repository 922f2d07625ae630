"""From words to the ids a model reads, and back: word vocabularies and WordPiece tokenizers alike.

:func:`encode_texts` turns tokenized texts into right-padded token ids with, for every token, the word it belongs to
(``word_ids``; special tokens and padding belong to none), so that scores can be reported per word (a word's
subword scores summed, :func:`~captum_text_ext.datasets.subwords.aggregate_subword_scores`) or per subword. It
also finds the words the model cannot read (mapped to its unknown token) and cuts texts longer than the model's limit
(:func:`token_limit`), saying so: a method explains what the model read, never something else silently.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, List, Optional, Sequence

import torch
from torch import Tensor, nn

from captum_text_ext.datasets import Vocabulary, kim_tokenize, pad_sequences
from captum_text_ext.datasets.subwords import NO_WORD
from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
from captum_text_ext.models.checkpoints import TokenVocabulary

__all__ = [
    "UNITS",
    "EncodedTexts",
    "TextWarning",
    "encode_texts",
    "token_limit",
    "tokenize_for",
    "tokenize_texts",
    "unknown_words_message",
]

class TextWarning(UserWarning):
    """Said of texts the model reads otherwise than given: words it does not know, words cut at its limit."""


UNITS = ("word", "subword")
"""What one score belongs to: a word (the sum of its subwords' scores) or a token the model reads (a subword)."""


def tokenize_for(dataset: Optional[str]) -> Callable[[str], List[str]]:
    """The tokenizer that matches a zoo dataset: Kim (2014) with case kept for MR and AG News, lowercased for the
    SST and synthetic models (whose vocabularies are lowercase)."""
    if dataset in ("mr", "ag_news"):
        return kim_tokenize
    return lambda text: kim_tokenize(text, lower=True)


def tokenize_texts(texts: Sequence[str], dataset: Optional[str]) -> List[List[str]]:
    """Tokenize raw texts for a model of ``dataset`` (:func:`tokenize_for`).

    Raises:
        ValueError: for a text that tokenizes to nothing.
    """
    tokenize = tokenize_for(dataset)
    token_lists = []
    for text in texts:
        tokens = tokenize(text)
        if not tokens:
            raise ValueError(f"The text {text!r} tokenizes to nothing; give a text with at least one word")
        token_lists.append(tokens)
    return token_lists


def token_limit(model: nn.Module) -> Optional[int]:
    """The most tokens the model reads per text: a transformer's ``max_length`` (its position embeddings), a
    fixed-input CNN's ``input_length`` (it crops longer texts); ``None`` when unlimited."""
    config = getattr(model, "config", None)
    if isinstance(config, dict):
        for key in ("max_length", "input_length"):
            value = config.get(key)
            if isinstance(value, int):
                return value
    return None


@dataclasses.dataclass(frozen=True)
class EncodedTexts:
    """Texts as a model reads them.

    Attributes:
        token_ids: :math:`(N, T)` right-padded ids.
        lengths: :math:`(N,)` tokens per text (special tokens included).
        word_ids: :math:`(N, T)` the word of each token (:data:`~captum_text_ext.datasets.subwords.NO_WORD` at special
            tokens and padding).
        words: the words of each text (after truncation).
        tokens: the tokens of each text as the model reads them: the words for a word vocabulary, the subwords with
            ``[CLS]`` and ``[SEP]`` for a WordPiece tokenizer.
        unknown: per text, the words the model reads as its unknown token.
        truncated: per text, how many trailing words were cut to fit the model's limit.
    """

    token_ids: Tensor
    lengths: Tensor
    word_ids: Tensor
    words: List[List[str]]
    tokens: List[List[str]]
    unknown: List[List[str]]
    truncated: List[int]


def _encode_words(vocabulary: Vocabulary, token_lists: Sequence[Sequence[str]]) -> EncodedTexts:
    encoded = [vocabulary.encode(tokens) for tokens in token_lists]
    token_ids, lengths = pad_sequences(encoded, vocabulary.pad_index)
    positions = torch.arange(token_ids.shape[1]).expand_as(token_ids)
    word_ids = torch.where(positions < lengths.unsqueeze(1), positions, torch.full_like(positions, NO_WORD))
    unk = vocabulary.unk_index if vocabulary.unk_token is not None else None
    unknown = [[w for w, i in zip(tokens, ids) if i == unk and w != vocabulary.unk_token]
               for tokens, ids in zip(token_lists, encoded)]
    words = [list(tokens) for tokens in token_lists]
    return EncodedTexts(token_ids, lengths, word_ids, words, words, unknown, [0] * len(words))


def _encode_subwords(tokenizer: WordPieceTokenizer, token_lists: Sequence[Sequence[str]]) -> EncodedTexts:
    batch = tokenizer.encode_batch(token_lists)
    unknown = []
    for row, words in enumerate(token_lists):
        unread = batch.word_ids[row][batch.token_ids[row] == tokenizer.unk_index].tolist()
        unknown.append([words[i] for i in sorted(set(unread)) if i != NO_WORD])
    return EncodedTexts(batch.token_ids, batch.lengths, batch.word_ids, [list(w) for w in token_lists],
                        batch.tokens, unknown, [0] * len(token_lists))


def _encode(vocabulary: TokenVocabulary, token_lists: Sequence[Sequence[str]]) -> EncodedTexts:
    if isinstance(vocabulary, WordPieceTokenizer):
        return _encode_subwords(vocabulary, token_lists)
    return _encode_words(vocabulary, token_lists)


def encode_texts(
    vocabulary: TokenVocabulary, token_lists: Sequence[Sequence[str]], max_tokens: Optional[int] = None
) -> EncodedTexts:
    """Encode tokenized texts; a text with more than ``max_tokens`` tokens (special tokens included) loses its
    trailing words until it fits (:attr:`EncodedTexts.truncated` counts them).

    Raises:
        ValueError: for an empty text, a word that yields no token, or a ``max_tokens`` too small for one word.

    Examples:
        >>> vocabulary = Vocabulary(["<pad>", "<unk>", "good", "film"])
        >>> encoded = encode_texts(vocabulary, [["good", "film", "indeed"], ["film"]], max_tokens=2)
        >>> encoded.token_ids.tolist(), encoded.unknown, encoded.truncated
        ([[2, 3], [3, 0]], [[], []], [1, 0])
    """
    for index, tokens in enumerate(token_lists):
        if not tokens:
            raise ValueError(f"Expected every text to hold at least one word, but text {index} is empty")
    encoded = _encode(vocabulary, token_lists)
    if max_tokens is None or int(encoded.lengths.max()) <= max_tokens:
        return encoded
    kept: List[List[str]] = []
    for row, words in enumerate(encoded.words):
        if int(encoded.lengths[row]) <= max_tokens:
            kept.append(words)
            continue
        in_words = encoded.word_ids[row][encoded.word_ids[row] != NO_WORD]
        allowed = max_tokens - (int(encoded.lengths[row]) - in_words.numel())  # room left by the special tokens
        fits = int(in_words[allowed]) if allowed >= 0 else 0  # the words before the first token cut fit whole
        if fits < 1:
            raise ValueError(f"Text {row}: its first word alone takes more than the model's {max_tokens} tokens")
        kept.append(words[:fits])
    result = _encode(vocabulary, kept)
    truncated = [len(before) - len(after) for before, after in zip(encoded.words, kept)]
    return dataclasses.replace(result, truncated=truncated)


def unknown_words_message(encoded: EncodedTexts, unk_token: str, shown: int = 10) -> Optional[str]:
    """A sentence naming the words the model reads as ``unk_token`` and their share of all words, or ``None`` when
    every word is known."""
    unknown = [w for row in encoded.unknown for w in row]
    if not unknown:
        return None
    total = sum(len(words) for words in encoded.words)
    distinct = sorted(set(unknown), key=unknown.index)
    names = ", ".join(repr(w) for w in distinct[:shown]) + (f" and {len(distinct) - shown} more"
                                                            if len(distinct) > shown else "")
    return (f"{len(unknown)} of {total} words ({100 * len(unknown) / total:.1f}%) are not in the model's vocabulary "
            f"and are explained as {unk_token}: {names}")
