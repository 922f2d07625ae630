"""Every decimal number the docs pages quote in their prose is a number of the results files the page reads from.

A page that quotes a results file goes stale at the next rerun; this test finds a quoted number that no results file
of the page holds (rounded to the quoted digits; a percentage as its fraction), outside code, math and literals. It
cannot tell which cell a number came from (the method guide has its own, stricter test in ``test_repository.py``);
it catches numbers left over from an earlier run. The few numbers that are not results (versions, section numbers,
derived constants) are listed with their reason.
"""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]

PAGES: Dict[str, Tuple[str, ...]] = {
    "contextual_decomposition.rst": ("murdoch2018/results.json", "cd_speed.json"),
    "models.rst": ("models/*.json", "seed_spread/seed_spread.json", "yuan2019/results.json"),
    "gradient_linear_surrogate.rst": ("hechtlinger2016/*.json",),
    "transformer_lrp.rst": ("lrp_speed.json",),
    "lstm_lrp.rst": ("lrp_speed.json", "arras2017/*.json"),
    "hidden_unit_optimization.rst": ("yuan2019/results.json", "hiddenunit_speed.json", "seed_spread/seed_spread.json"),
    "leaderboard.rst": ("leaderboard/leaderboard.json", "leaderboard/models/*.json", "models/*.json"),
    "corpus.rst": ("corpus_speed.json",),
    "ground_truth.rst": ("planted/planted.json", "planted_transformer_lrp/planted.json"),
}
"""Each page and the results files (under ``benchmarks/results/``) its quoted numbers come from."""

NOT_RESULTS: Dict[str, Dict[str, str]] = {
    "models.rst": {"1.21": "subwords per word of the WordPiece vocabulary, measured by the zoo tests",
                   "1.51": "subwords per word of the synthetic transformer's vocabulary, as above"},
    "lstm_lrp.rst": {"12.6%": "how far Arras' own code misses conservation, measured by the oracle test"},
    "corpus.rst": {"0.049%": "2^-11 as a percentage: the float16 rounding bound"},
}
"""Quoted numbers that are not in a results file, with the reason."""

_SKIPPED_BLOCK = re.compile(r"\s*\.\. (code-block|doctest|testcode|math|image|figure|include|list-table)::|.*::\s*$")
_NOT_A_RESULT = re.compile(r"(Sec\.|Prop\.|Fig\.|Table|Eq\.|LITERAL)\s*$")


def _numbers(value: Any, out: Set[float]) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        out.add(float(value))
    elif isinstance(value, str):
        out.update(float(x) for x in re.findall(r"\d+\.\d+", value))
        out.update(float(x) / 100 for x in re.findall(r"(\d+\.\d+)%", value))
    elif isinstance(value, dict):
        for item in value.values():
            _numbers(item, out)
    elif isinstance(value, list):
        for item in value:
            _numbers(item, out)


def _prose(text: str) -> str:
    """The page without code, math and literal blocks, inline literals, roles and links."""
    kept: List[str] = []
    in_block, indent = False, 0
    for line in text.splitlines():
        if _SKIPPED_BLOCK.match(line):
            in_block, indent = True, len(line) - len(line.lstrip())
            continue
        if in_block and (not line.strip() or len(line) - len(line.lstrip()) > indent):
            continue
        in_block = False
        kept.append(line)
    prose = "\n".join(kept)
    prose = re.sub(r"``[^`]*``", "LITERAL", prose)  # kept as a word: a number after it is its version
    for pattern in (r":\w+:`[^`]*`", r"https?://\S+"):
        prose = re.sub(pattern, " ", prose)
    return prose


def _quoted(prose: str) -> List[Tuple[str, float, int]]:
    """``(as written, value, decimals)`` of every decimal number; a percentage (also the first of a range ``a–b%``)
    as its fraction."""
    quoted = []
    for match in re.finditer(r"(?<![\w.])(\d+\.\d+)(?:–(\d+(?:\.\d+)?))?( ?%| min)?(?![\w.]*\d)", prose):
        if _NOT_A_RESULT.search(prose[max(0, match.start() - 20):match.start()]):
            continue
        unit = (match.group(3) or "").strip()
        for number in (n for n in match.group(1, 2) if n and "." in n):
            decimals = len(number.split(".")[1])
            if unit == "%":
                quoted.append((number + "%", float(number) / 100, decimals + 2))
            elif unit == "min":
                quoted.append((number + " min", float(number) * 60, decimals))
            else:
                quoted.append((number, float(number), decimals))
    return quoted


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_number_a_page_quotes_is_in_its_results(page: str) -> None:
    values: Set[float] = set()
    files = [path for pattern in PAGES[page] for path in glob.glob(str(ROOT / "benchmarks" / "results" / pattern))]
    assert files, f"{page}: none of {PAGES[page]} exists"
    for path in files:
        _numbers(json.loads(Path(path).read_text(encoding="utf-8")), values)
    allowed = NOT_RESULTS.get(page, {})
    def held(written: str, value: float, decimals: int) -> bool:
        if written.endswith(" min"):  # results hold seconds
            return any(round(v / 60, decimals) == round(value / 60, decimals) for v in values)
        return any(round(v, decimals) == round(value, decimals) for v in values)

    quoted = _quoted(_prose((ROOT / "docs" / page).read_text(encoding="utf-8")))
    missing = sorted({written for written, value, decimals in quoted if written not in allowed
                      and not held(written, value, decimals)})
    assert missing == [], f"{page} quotes numbers no results file of it holds: {missing}"


def test_the_prose_reader_skips_code_math_and_literals_and_reads_percent_ranges() -> None:
    text = ("Agreement 97.8–100% (r = 0.71).\n\n.. code-block:: python\n\n   x = 0.123\n\nAfter :math:`0.5` and "
            "``lxt`` 2.1, Sec. 4.1, 0.25 and 1.5 min.")
    assert [(w, round(v, 4), d) for w, v, d in _quoted(_prose(text))] == [
        ("97.8%", 0.978, 3), ("0.71", 0.71, 2), ("0.25", 0.25, 2), ("1.5 min", 90.0, 1)]
