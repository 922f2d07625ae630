"""A token vocabulary: ids for tokens, with ``<pad>`` and ``<unk>``, saved as JSON.

Users of torchtext (end-of-life) convert their vocabulary with ``Vocabulary.from_itos(vocab.get_itos())``; nothing in
this package imports torchtext.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

__all__ = ["PAD_TOKEN", "UNK_TOKEN", "Vocabulary"]

PAD_TOKEN = "<pad>"
"""The padding token of a built vocabulary (id 0)."""
UNK_TOKEN = "<unk>"
"""The token unknown tokens map to (id 1 of a built vocabulary)."""


class Vocabulary:
    """A bijection between tokens and ids.

    Ids are positions in :attr:`itos`. A vocabulary built by :meth:`build` puts ``<pad>`` at id 0 and ``<unk>`` at
    id 1, then the tokens by decreasing frequency, ties broken alphabetically, so the same corpus always gives the
    same ids.

    Args:
        itos: the tokens in id order; they must be unique.
        pad_token: the padding token, which must be in ``itos``; ``None`` for a vocabulary without padding.
        unk_token: the token that unknown tokens map to, which must be in ``itos``; ``None`` makes
            :meth:`encode` raise on unknown tokens.

    Raises:
        ValueError: when a token repeats or a named special token is missing.

    Examples:
        >>> vocab = Vocabulary.build([["a", "good", "movie"], ["a", "bad", "movie"]])
        >>> vocab.itos
        ['<pad>', '<unk>', 'a', 'movie', 'bad', 'good']
        >>> vocab.encode(["a", "great", "movie"])
        [2, 1, 3]
        >>> vocab.decode([2, 5, 3])
        ['a', 'good', 'movie']
    """

    def __init__(
        self, itos: Sequence[str], pad_token: Optional[str] = PAD_TOKEN, unk_token: Optional[str] = UNK_TOKEN
    ) -> None:
        self._itos: List[str] = list(itos)
        self._stoi: Dict[str, int] = {}
        for index, token in enumerate(self._itos):
            if not isinstance(token, str):
                raise ValueError(f"Expected every token to be a str, but got {token!r} at id {index}")
            if token in self._stoi:
                raise ValueError(f"Expected unique tokens, but {token!r} appears at ids {self._stoi[token]} and {index}")
            self._stoi[token] = index
        for role, special in (("pad_token", pad_token), ("unk_token", unk_token)):
            if special is not None and special not in self._stoi:
                raise ValueError(f"Expected `{role}` {special!r} to be in the vocabulary, but it is not among its tokens")
        self.pad_token = pad_token
        self.unk_token = unk_token

    @classmethod
    def build(
        cls,
        token_lists: Iterable[Sequence[str]],
        min_freq: int = 1,
        max_size: Optional[int] = None,
        pad_token: str = PAD_TOKEN,
        unk_token: str = UNK_TOKEN,
    ) -> "Vocabulary":
        """Build a vocabulary from tokenized texts.

        Args:
            token_lists: the tokenized texts.
            min_freq: tokens seen fewer times are left out (they encode to ``<unk>``).
            max_size: the most tokens to keep, special tokens not counted; ``None`` keeps all.
            pad_token: the padding token, id 0.
            unk_token: the unknown token, id 1.
        """
        if min_freq < 1:
            raise ValueError(f"Expected `min_freq` >= 1, but got {min_freq}")
        if max_size is not None and max_size < 0:
            raise ValueError(f"Expected `max_size` >= 0 or None, but got {max_size}")
        counts = Counter(token for tokens in token_lists for token in tokens)
        for special in (pad_token, unk_token):
            counts.pop(special, None)
        ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls([pad_token, unk_token, *ranked], pad_token=pad_token, unk_token=unk_token)

    @classmethod
    def from_itos(
        cls, itos: Sequence[str], pad_token: Optional[str] = PAD_TOKEN, unk_token: Optional[str] = UNK_TOKEN
    ) -> "Vocabulary":
        """Wrap an existing id-to-token list, e.g. torchtext's ``vocab.get_itos()``; ids are kept as they are."""
        return cls(itos, pad_token=pad_token, unk_token=unk_token)

    @property
    def itos(self) -> List[str]:
        """The tokens in id order (a copy)."""
        return list(self._itos)

    @property
    def stoi(self) -> Dict[str, int]:
        """Token to id (a copy)."""
        return dict(self._stoi)

    @property
    def pad_index(self) -> int:
        """The id of the padding token."""
        if self.pad_token is None:
            raise ValueError("This vocabulary has no padding token (`pad_token=None`)")
        return self._stoi[self.pad_token]

    @property
    def unk_index(self) -> int:
        """The id of the unknown token."""
        if self.unk_token is None:
            raise ValueError("This vocabulary has no unknown token (`unk_token=None`)")
        return self._stoi[self.unk_token]

    @property
    def special_indices(self) -> List[int]:
        """The ids of the padding and unknown tokens that this vocabulary has."""
        return [self._stoi[t] for t in (self.pad_token, self.unk_token) if t is not None]

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, pad_token={self.pad_token!r}, unk_token={self.unk_token!r})"

    def encode(self, tokens: Sequence[str]) -> List[int]:
        """Token ids; unknown tokens map to ``<unk>``.

        Raises:
            KeyError: for an unknown token when the vocabulary has no ``unk_token``.
        """
        if self.unk_token is None:
            missing = [t for t in tokens if t not in self._stoi]
            if missing:
                raise KeyError(f"Tokens not in the vocabulary (which has no unk_token): {missing[:5]}")
            return [self._stoi[t] for t in tokens]
        unk = self._stoi[self.unk_token]
        return [self._stoi.get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Tokens for ids (ints or a 1-D integer tensor).

        Raises:
            IndexError: for an id outside ``[0, len(self))``.
        """
        out = []
        for index in ids:
            i = int(index)
            if not 0 <= i < len(self._itos):
                raise IndexError(f"Expected ids in [0, {len(self._itos)}), but got {i}")
            out.append(self._itos[i])
        return out

    def to_dict(self) -> Dict[str, Union[List[str], Optional[str]]]:
        """A plain dict (lists and strings only), safe to store in a ``weights_only`` checkpoint or as JSON."""
        return {"itos": list(self._itos), "pad_token": self.pad_token, "unk_token": self.unk_token}

    @classmethod
    def from_dict(cls, data: Dict[str, object]) -> "Vocabulary":
        """The inverse of :meth:`to_dict`.

        Raises:
            ValueError: when ``data`` lacks ``itos`` or holds values of the wrong type.
        """
        itos = data.get("itos")
        if not isinstance(itos, list):
            raise ValueError(f"Expected a dict with an `itos` list, but got keys {sorted(data)}")
        specials: Dict[str, Optional[str]] = {}
        for role in ("pad_token", "unk_token"):
            value = data.get(role)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"Expected `{role}` to be a str or None, but got {value!r}")
            specials[role] = value
        return cls(itos, pad_token=specials["pad_token"], unk_token=specials["unk_token"])

    def save(self, path: Union[str, Path]) -> None:
        """Write the vocabulary as UTF-8 JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`.

        Raises:
            ValueError: when the file is not JSON of the expected form; the message names the file.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not a vocabulary JSON file ({err})") from err
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object, but got {type(data).__name__}")
        return cls.from_dict(data)
