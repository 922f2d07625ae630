"""A WordPiece tokenizer for the zoo's transformers: words in, subword ids framed by ``[CLS]`` … ``[SEP]`` out.

:class:`WordPieceTokenizer` wraps a Hugging Face ``tokenizers.Tokenizer`` (a WordPiece model, the BERT normalizer
with lowercasing, a whitespace pre-tokenizer and the ``[CLS] $A [SEP]`` template). It reads texts that are already
split into words (by the tokenizer of the dataset, e.g. :func:`~captum_text_ext.datasets.kim_tokenize`), so every zoo
model of a dataset sees the same words and a transformer's subword scores sum back to them
(:func:`~captum_text_ext.datasets.subwords.aggregate_subword_scores`). Checkpoints store it as the tokenizer's own JSON
(:meth:`~WordPieceTokenizer.to_json`: the text of a ``tokenizer.json`` file, which ``tokenizers.Tokenizer.from_str``
and ``transformers.PreTrainedTokenizerFast(tokenizer_object=...)`` read).

``tokenizers`` is imported when a tokenizer is built, not with this module: it comes with the ``transformers``
extra (``pip install "captum_text_ext[transformers]"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Sequence, Tuple

import torch

from captum_text_ext.datasets.collate import TextBatch, lengths_to_mask, pad_sequences
from captum_text_ext.datasets.subwords import SubwordBatch, word_ids_tensor
from captum_text_ext.datasets.vocab import Vocabulary

if TYPE_CHECKING:
    import tokenizers

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
MASK_TOKEN = "[MASK]"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)
"""The special tokens, with ids 0–4 in a tokenizer built by :meth:`WordPieceTokenizer.train`."""

FORMAT = "tokenizers.json"
"""The ``format`` marker of :meth:`WordPieceTokenizer.to_dict`."""

EXTRA_HINT = 'install the transformers extra: pip install "captum_text_ext[transformers]"'


def import_tokenizers() -> Any:
    """The ``tokenizers`` module.

    Raises:
        ImportError: when it is not installed; the message says how to install it.
    """
    try:
        import tokenizers
    except ImportError as err:
        raise ImportError(f"WordPiece tokenizers need the `tokenizers` package; {EXTRA_HINT}") from err
    return tokenizers


class WordPieceTokenizer:
    """Words → WordPiece subword ids, framed by ``[CLS]`` and ``[SEP]``; ids → subword strings.

    It has the id side of a :class:`~captum_text_ext.datasets.Vocabulary` (``len``, ``itos``, ``pad_index``,
    ``unk_index``, ``special_indices``, ``decode``, ``to_dict``/``from_dict``) but no ``encode``: a word becomes one or
    more ids, so code written for one id per word must not take it by mistake. Texts go in as words through
    :meth:`encode_batch` (ids, attention mask, word ids) or :meth:`collate` (training batches).

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` whose vocabulary holds every token of :data:`SPECIAL_TOKENS` and whose
            ids run without gaps, without padding or truncation set (padding is done here, and truncation would drop
            words silently).

    Raises:
        ValueError: when a special token is missing, an id has no token, or padding or truncation is set.

    Examples:
        >>> words = [["a", "good", "movie"], ["a", "bad", "movie"], ["not", "good"]] * 5
        >>> tokenizer = WordPieceTokenizer.train(words, vocab_size=40)
        >>> batch = tokenizer.encode_batch([["a", "goodie", "movie"], ["bad"]])
        >>> batch.tokens[0], batch.word_ids.tolist()[0]
        (['[CLS]', 'a', 'good', '##ie', 'movie', '[SEP]'], [-1, 0, 1, 1, 2, -1])
        >>> batch.attention_mask.tolist()[1]
        [1, 1, 1, 0, 0, 0]
        >>> tokenizer.decode(batch.token_ids[1, :3])
        ['[CLS]', 'bad', '[SEP]']
    """

    def __init__(self, tokenizer: "tokenizers.Tokenizer") -> None:
        self._special_ids: Dict[str, int] = {}
        missing = []
        for token in SPECIAL_TOKENS:
            index = tokenizer.token_to_id(token)
            if index is None:
                missing.append(token)
            else:
                self._special_ids[token] = index
        if missing:
            raise ValueError(
                f"Expected a tokenizer whose vocabulary holds {list(SPECIAL_TOKENS)}, but it lacks {missing}"
            )
        for setting, value in (("padding", tokenizer.padding), ("truncation", tokenizer.truncation)):
            if value is not None:
                raise ValueError(
                    f"Expected a tokenizer without {setting} (WordPieceTokenizer pads batches itself and never "
                    f"truncates), but it has {setting}={value}; call `tokenizer.no_{setting}()` first"
                )
        itos = [tokenizer.id_to_token(i) for i in range(max(tokenizer.get_vocab().values()) + 1)]
        gaps = [index for index, token in enumerate(itos) if token is None]
        if gaps:
            raise ValueError(
                f"Expected a tokenizer whose ids run 0, 1, … without gaps, but no token has ids {gaps[:5]}"
            )
        self._tokenizer = tokenizer
        self._ids = Vocabulary([str(token) for token in itos], pad_token=PAD_TOKEN, unk_token=UNK_TOKEN)

    @classmethod
    def train(
        cls, token_lists: Iterable[Sequence[str]], vocab_size: int, min_frequency: int = 2
    ) -> "WordPieceTokenizer":
        """Train a WordPiece vocabulary on tokenized texts with ``tokenizers``' ``WordPieceTrainer`` (deterministic:
        the same texts give the same tokenizer).

        Args:
            token_lists: the training texts as words.
            vocab_size: the most vocabulary entries: the special tokens, every character seen (alone and as a
                ``##`` continuation; these are kept even beyond ``vocab_size``) and the subwords learnt.
            min_frequency: pairs seen fewer times are not merged into a subword.

        Raises:
            ImportError: without the ``tokenizers`` package.
            ValueError: for a ``vocab_size`` below the special tokens' count, or ``min_frequency`` < 1.
        """
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(
                f"Expected `vocab_size` > {len(SPECIAL_TOKENS)} (the special tokens), but got {vocab_size}"
            )
        if min_frequency < 1:
            raise ValueError(f"Expected `min_frequency` >= 1, but got {min_frequency}")
        tk = import_tokenizers()
        normalizer = tk.normalizers.BertNormalizer(lowercase=True)
        texts = [" ".join(normalizer.normalize_str(word) for word in words) for words in token_lists]
        # tokenizers' WordPiece (and BPE) trainer numbers the "##c" continuation tokens in hash-map order and breaks
        # ties between equally frequent pairs by those numbers, so two runs can learn different vocabularies
        # (huggingface/tokenizers#1794). Declaring every "##c" up front fixes their ids and makes training
        # deterministic; the tokenizer is then rebuilt from the learnt vocabulary with only the real special tokens.
        alphabet = sorted({char for text in texts for char in text if not char.isspace()})
        continuations = [f"##{char}" for char in alphabet]
        trainer = tk.trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[*SPECIAL_TOKENS, *continuations],
            show_progress=False,
        )
        learner = tk.Tokenizer(tk.models.WordPiece(unk_token=UNK_TOKEN))
        learner.pre_tokenizer = tk.pre_tokenizers.WhitespaceSplit()
        learner.train_from_iterator(texts, trainer)
        tokenizer = tk.Tokenizer(tk.models.WordPiece(vocab=learner.get_vocab(), unk_token=UNK_TOKEN))
        tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
        tokenizer.normalizer = normalizer
        tokenizer.pre_tokenizer = tk.pre_tokenizers.WhitespaceSplit()
        tokenizer.decoder = tk.decoders.WordPiece()
        tokenizer.post_processor = tk.processors.TemplateProcessing(
            single=f"{CLS_TOKEN} $A {SEP_TOKEN}",
            special_tokens=[(token, tokenizer.token_to_id(token)) for token in (CLS_TOKEN, SEP_TOKEN)],
        )
        return cls(tokenizer)

    @property
    def tokenizer(self) -> "tokenizers.Tokenizer":
        """The wrapped ``tokenizers.Tokenizer`` (do not set padding or truncation on it)."""
        return self._tokenizer

    @property
    def itos(self) -> List[str]:
        """The tokens in id order (a copy)."""
        return self._ids.itos

    @property
    def pad_token(self) -> str:
        """The padding token."""
        return PAD_TOKEN

    @property
    def unk_token(self) -> str:
        """The token of characters the vocabulary cannot spell."""
        return UNK_TOKEN

    @property
    def pad_index(self) -> int:
        """The id of ``[PAD]``."""
        return self._special_ids[PAD_TOKEN]

    @property
    def unk_index(self) -> int:
        """The id of ``[UNK]``."""
        return self._special_ids[UNK_TOKEN]

    @property
    def special_indices(self) -> List[int]:
        """The ids of :data:`SPECIAL_TOKENS`."""
        return list(self._special_ids.values())

    def __len__(self) -> int:
        return len(self._ids)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WordPieceTokenizer):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"WordPieceTokenizer(size={len(self)})"

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Subword strings for ids (ints or a 1-D integer tensor), special tokens and padding included.

        Raises:
            IndexError: for an id outside ``[0, len(self))``.
        """
        return self._ids.decode(ids)

    def encode_batch(self, token_lists: Sequence[Sequence[str]]) -> SubwordBatch:
        """Tokenize sentences given as words into a right-padded batch.

        Raises:
            ValueError: for an empty sentence, or a word that yields no subword (e.g. only control characters,
                which the normalizer removes): its score could not be reported.
        """
        encodings = self._tokenizer.encode_batch([list(words) for words in token_lists], is_pretokenized=True)
        for index, (words, encoding) in enumerate(zip(token_lists, encodings)):
            if not words:
                raise ValueError(f"Expected every sentence to hold at least one word, but sentence {index} is empty")
            covered = {word for word in encoding.word_ids if word is not None}
            lost = [words[i] for i in range(len(words)) if i not in covered]
            if lost:
                raise ValueError(f"Sentence {index}: the word(s) {lost[:5]} yield no subword token")
        token_ids, lengths = pad_sequences([encoding.ids for encoding in encodings], self.pad_index)
        return SubwordBatch(
            token_ids=token_ids,
            attention_mask=lengths_to_mask(lengths, token_ids.shape[1]).long(),
            word_ids=word_ids_tensor([encoding.word_ids for encoding in encodings], token_ids.shape[1]),
            lengths=lengths,
            tokens=[list(encoding.tokens) for encoding in encodings],
        )

    def collate(self, items: Sequence[Tuple[Sequence[str], int]]) -> TextBatch:
        """``collate_fn`` turning ``(words, label)`` pairs into a :class:`~captum_text_ext.datasets.TextBatch` of
        subword ids (``lengths`` count the special tokens), as :class:`~captum_text_ext.datasets.TextCollator` does
        for a word vocabulary."""
        batch = self.encode_batch([words for words, _ in items])
        labels = torch.tensor([label for _, label in items], dtype=torch.long)
        return TextBatch(batch.token_ids, batch.lengths, batch.attention_mask.bool(), labels)

    def to_json(self) -> str:
        """The tokenizer's own JSON (the text of a ``tokenizer.json`` file)."""
        return str(self._tokenizer.to_str())

    @classmethod
    def from_json(cls, text: str) -> "WordPieceTokenizer":
        """The inverse of :meth:`to_json`.

        Raises:
            ImportError: without the ``tokenizers`` package.
            ValueError: when ``text`` is not a tokenizer's JSON, or the tokenizer fails the constructor's checks.
        """
        tk = import_tokenizers()
        try:
            tokenizer = tk.Tokenizer.from_str(text)
        except Exception as err:  # tokenizers raises its own Exception subclass for malformed JSON
            raise ValueError(f"Expected the JSON of a `tokenizers` tokenizer, but it does not load ({err})") from err
        return cls(tokenizer)

    def to_dict(self) -> Dict[str, str]:
        """A plain dict (strings only), safe to store in a ``weights_only`` checkpoint."""
        return {"format": FORMAT, "tokenizer": self.to_json()}

    @classmethod
    def from_dict(cls, data: Dict[str, object]) -> "WordPieceTokenizer":
        """The inverse of :meth:`to_dict`.

        Raises:
            ValueError: when ``data`` is not such a dict.
        """
        text = data.get("tokenizer")
        if data.get("format") != FORMAT or not isinstance(text, str):
            raise ValueError(
                f"Expected a dict with format {FORMAT!r} and a `tokenizer` string, but got keys {sorted(data)}"
            )
        return cls.from_json(text)


__all__ = ["FORMAT", "SPECIAL_TOKENS", "WordPieceTokenizer", "import_tokenizers"]
