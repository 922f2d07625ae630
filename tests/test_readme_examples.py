"""Every Python example of the README runs as printed, on the zoo models the session's fixtures train."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _examples() -> List[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def test_readme_has_an_example_per_method() -> None:
    examples = "\n".join(_examples())
    for name in ("LSTMLRP", "ContextualDecomposition", "HiddenUnitOptimization", "GradientLinearSurrogate"):
        assert name in examples
    for example in _examples():
        code = [line for line in example.splitlines() if line.strip() and not line.startswith(("import ", "from "))]
        assert len(code) <= 10, example


@pytest.mark.parametrize("index", range(len(_examples())))
def test_readme_example_runs(index: int, synthetic_zoo: dict, shared_data_dir: Path,
                             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("CAPTUM_TEXT_EXT_CACHE", str(synthetic_zoo["cache"]))  # bow-mlp-sst2 trains there
    exec(compile(_examples()[index], f"README example {index}", "exec"), {})
    assert capsys.readouterr().out.strip()
