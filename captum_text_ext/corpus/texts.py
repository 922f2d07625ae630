"""Reading a file of texts: one text per line, or JSON Lines with a ``text`` field and an optional ``id``.

``captum-text-ext explain --texts FILE`` and ``captum-text-ext attribute --texts FILE`` read files this way. A file
whose name ends in ``.jsonl`` holds one JSON object per line, ``{"text": ..., "id": ...}`` (``id`` a string or an
integer, unique; default: the line number); any other file holds one text per line, whose id is its line number
(1-based). The file must be UTF-8 (a byte-order mark is allowed). Blank lines are not texts: they are skipped and
reported, so the ids of the other texts stay their line numbers.

:func:`read_texts` reads a whole file; :func:`iter_texts` streams it line by line from a byte offset (the corpus
runner reads a large file one window at a time).

Examples:
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = pathlib.Path(tmp) / "texts.jsonl"
    ...     _ = path.write_text('{"text": "a good film", "id": "r1"}\\n\\n{"text": "dull"}\\n', encoding="utf-8")
    ...     texts = read_texts(path)
    >>> [(t.id, t.text) for t in texts.texts], texts.skipped
    ([('r1', 'a good film'), ('3', 'dull')], {'2': 'blank line'})
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

__all__ = ["Line", "Text", "TextFile", "iter_texts", "read_texts"]

_BOM = b"\xef\xbb\xbf"


@dataclasses.dataclass(frozen=True)
class Text:
    """One text and its id."""

    id: str
    text: str


@dataclasses.dataclass(frozen=True)
class Line:
    """One line of a text file as :func:`iter_texts` reads it.

    Attributes:
        number: the line number (1-based).
        offset: the byte offset where the line starts.
        text: the text it holds, or ``None`` for a blank line.
    """

    number: int
    offset: int
    text: Optional[Text]


@dataclasses.dataclass(frozen=True)
class TextFile:
    """The texts of a file, in file order.

    Attributes:
        texts: every text with its id.
        skipped: line number to why the line holds no text (a blank line).
    """

    texts: List[Text]
    skipped: Dict[str, str]


def _decode(path: Path, number: int, offset: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8: byte {offset + err.start} (line {number}) is {raw[err.start:err.start + 1]!r}; "
            "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from err


def _json_text(path: Path, number: int, line: str) -> Text:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}, line {number}: not a JSON object ({err.msg})") from err
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise ValueError(f"{path}, line {number}: expected a JSON object with a string `text` field")
    identifier = record.get("id", number)
    if isinstance(identifier, bool) or not isinstance(identifier, (str, int)):
        raise ValueError(f"{path}, line {number}: expected `id` to be a string or an integer, but got "
                         f"{type(identifier).__name__}")
    return Text(str(identifier), record["text"])


def iter_texts(path: Union[str, Path], start: Tuple[int, int] = (0, 1)) -> Iterator[Line]:
    """The lines of ``path`` from byte offset ``start[0]``, which begins line number ``start[1]``.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: for a line that is not UTF-8 (naming the byte and line), or a JSON line that is not an object
            with a string ``text`` and an ``id`` that is a string or integer.
    """
    path = Path(path)
    jsonl = path.name.endswith(".jsonl")
    offset, number = start
    with path.open("rb") as stream:
        stream.seek(offset)
        for raw in stream:
            here = offset
            offset += len(raw)
            if here == 0 and raw.startswith(_BOM):
                raw, here = raw[len(_BOM):], len(_BOM)
            line = _decode(path, number, here, raw).rstrip("\r\n")
            if not line.strip():
                yield Line(number, here, None)
            else:
                yield Line(number, here, _json_text(path, number, line) if jsonl else Text(str(number), line))
            number += 1


def read_texts(path: Union[str, Path]) -> TextFile:
    """The texts of ``path`` (module docstring).

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: as :func:`iter_texts` does, and for a repeated id or a file without any text.
    """
    texts: List[Text] = []
    skipped: Dict[str, str] = {}
    seen: Dict[str, int] = {}
    for line in iter_texts(path):
        if line.text is None:
            skipped[str(line.number)] = "blank line"
            continue
        if line.text.id in seen:
            raise ValueError(f"{path}: the id {line.text.id!r} is given twice (lines {seen[line.text.id]} and "
                             f"{line.number}); ids must be unique")
        seen[line.text.id] = line.number
        texts.append(line.text)
    if not texts:
        raise ValueError(f"{path} holds no text")
    return TextFile(texts, skipped)
