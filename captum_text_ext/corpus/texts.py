"""Reading a file of texts: one text per line, or JSON Lines with a ``text`` field and an optional ``id``.

``captum-text-ext explain --texts FILE`` and ``captum-text-ext attribute --texts FILE`` read files with
:func:`read_texts`. A file whose name ends in ``.jsonl`` holds one JSON object per line, ``{"text": ..., "id": ...}``
(``id`` a string or an integer, unique; default: the line number); any other file holds one text per line, whose
id is its line number (1-based). The file must be UTF-8 (a byte-order mark is allowed). Blank lines are not texts:
they are skipped and reported (:attr:`TextFile.skipped`), so the ids of the other texts stay their line numbers.

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
from typing import Dict, List, Union

__all__ = ["Text", "TextFile", "read_texts"]


@dataclasses.dataclass(frozen=True)
class Text:
    """One text and its id."""

    id: str
    text: str


@dataclasses.dataclass(frozen=True)
class TextFile:
    """The texts of a file, in file order.

    Attributes:
        texts: every text with its id.
        skipped: line number to why that line holds no text (a blank line).
    """

    texts: List[Text]
    skipped: Dict[str, str]


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise ValueError(
            f"{path} is not UTF-8: byte {err.start} (line {line}) is {data[err.start:err.start + 1]!r}; save the "
            "file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
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


def read_texts(path: Union[str, Path]) -> TextFile:
    """The texts of ``path`` (module docstring).

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: for a file that is not UTF-8 (naming the byte and line), a JSON line that is not an object with
            a string ``text``, an ``id`` that is not a string or integer, a repeated id, or a file without any text.
    """
    path = Path(path)
    content = _decode(path)
    texts: List[Text] = []
    skipped: Dict[str, str] = {}
    jsonl = path.name.endswith(".jsonl")
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            skipped[str(number)] = "blank line"
            continue
        texts.append(_json_text(path, number, line) if jsonl else Text(str(number), line))
    seen: Dict[str, int] = {}
    for index, text in enumerate(texts):
        if text.id in seen:
            raise ValueError(f"{path}: the id {text.id!r} is given twice (texts {seen[text.id] + 1} and {index + 1}); "
                             "ids must be unique")
        seen[text.id] = index
    if not texts:
        raise ValueError(f"{path} holds no text")
    return TextFile(texts, skipped)
