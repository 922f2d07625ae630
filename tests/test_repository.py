"""The repository's promises about itself: README commands, CI, changelog, version defined once."""

import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import captum_text_ext

ROOT = Path(__file__).resolve().parents[1]


def _readme_command(which: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "readme_commands.py"), which], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_readme_opens_with_install_and_test_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("```bash") < 30, "the two commands must open the README"
    install = _readme_command("install")
    assert "torch==2.13.0" in install and "captum-text-ext demo" in install
    assert _readme_command("test").startswith("python3 -m pytest tests")


def test_ci_runs_the_readme_test_command_and_points_at_shared_data() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "readme_commands.py test" in ci
    assert "CAPTUM_TEXT_EXT_DATA" in ci and "shared/data" in ci
    assert "-W" in ci and "sphinx" in ci and "execute_notebooks.py" in ci


def test_ci_checks_the_import_contracts_and_the_types_as_configured_in_setup_cfg() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "lint-imports" in ci and "mypy captum_text_ext" in ci
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    assert config["importlinter"]["root_package"] == "captum_text_ext"
    assert config.getboolean("mypy", "strict") and config.getboolean("mypy", "warn_unused_ignores")
    own = [section for section in config.sections() if section.startswith("mypy-captum_text_ext")]
    assert own == [], "the package's own modules get no mypy overrides"


def test_the_package_has_few_type_ignores_each_with_its_reason_and_small_modules() -> None:
    ignores, long_modules = [], []
    for path in sorted((ROOT / "captum_text_ext").rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > 800:
            long_modules.append(f"{path.relative_to(ROOT)}: {len(lines)} lines")
        for number, line in enumerate(lines, start=1):
            if "# type: ignore" in line:
                ignores.append((f"{path.relative_to(ROOT)}:{number}", line))
    assert long_modules == [], "no module of the package over 800 lines"
    assert len(ignores) <= 5, [where for where, _ in ignores]
    for where, line in ignores:
        assert re.search(r"# type: ignore\[[a-z-]+\]  # \S", line), f"{where}: a `type: ignore` names its code and reason"


def test_version_is_defined_once() -> None:
    hits = [
        path.relative_to(ROOT)
        for path in (ROOT / "captum_text_ext").rglob("*.py")
        if re.search(r"^__version__\s*=", path.read_text(encoding="utf-8"), re.M)
    ]
    assert [str(h) for h in hits] == ["captum_text_ext/_version.py"]
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", captum_text_ext.__version__)


def test_changelog_has_an_unreleased_section() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog and "### Added" in changelog


def _leaderboard_results() -> dict:
    path = ROOT / "benchmarks" / "results" / "leaderboard" / "leaderboard.json"
    return json.loads(path.read_text(encoding="utf-8"))["results"]


def _guide() -> str:
    """The guide's text with its line breaks and indents as single spaces."""
    return " ".join((ROOT / "docs" / "which_method.rst").read_text(encoding="utf-8").split())


def test_method_guide_opens_with_every_metrics_verdict_generated_from_the_results() -> None:
    guide = _guide()
    include = ".. include:: _generated/which_method_tables.rst"
    assert include in guide and guide.index(include) < guide.index("Short answers -------------")


def test_method_guide_quotes_only_values_and_verdicts_of_the_recorded_leaderboard() -> None:
    from captum_text_ext.benchmarks.verdicts import verdict

    guide, results = _guide(), _leaderboard_results()
    cells = [(method, cell) for model in results["models"].values() for column in model["summary"].values()
             for method, cell in column.items()]
    values = {f"{cell[key]:.3f}" for _, cell in cells for key in ("mean", "low", "high")}
    quoted = set(re.findall(r"-?\b\d\.\d{3}\b", guide))
    assert len(quoted) >= 15
    assert sorted(n for n in quoted if n not in values) == []
    # "METHOD 0.123 (verdict)": a cell of that method with that mean has that verdict
    methods = sorted(results["methods"], key=len, reverse=True)
    claims = [(method, value, said) for method in methods for value, said in re.findall(
        rf"(?<![\w×_]){re.escape(method)} (-?\d\.\d{{3}}) \((best|tied|worse)\)", guide)]
    assert len(claims) >= 15
    for method, value, said in claims:
        found = {verdict(cell) for name, cell in cells if name == method and f"{cell['mean']:.3f}" == value}
        assert found == {said}, (method, value, said, found)
    seconds = {f"{m['seconds_per_100']:.2f}" for model in results["models"].values() for m in model["methods"].values()}
    # two decimals: seconds per 100 sentences, and the "within 0.02" bound checked below
    quoted_seconds = set(re.findall(r"(?<![\d.])\d+\.\d{2}(?!\d)", guide)) - {"0.03"}
    assert len(quoted_seconds) >= 3 and sorted(s for s in quoted_seconds if s not in seconds) == []


def test_method_guide_range_claims_hold_on_the_recorded_leaderboard() -> None:
    results = _leaderboard_results()
    removal = ("comp", "suff", "del", "ins", "NAOPC comp", "NAOPC suff")
    for name, model in results["models"].items():
        summary = model["summary"]
        # LRP_cons stays within 0.03 of LRP in every removal column of every model it applies to
        for column, cells in summary.items():
            if column.split("@")[0] in removal and "LRP_cons" in cells:
                assert abs(cells["LRP_cons"]["mean"] - cells["LRP"]["mean"]) < 0.03, (name, column)
        # Saliency is best only in infidelity, on every model but transformer-synthetic, where it also leads AUPRC
        for column, cells in summary.items():
            if "Saliency" in cells:
                leads = column == "infid" or (name, column) == ("transformer-synthetic", "AUPRC")
                assert cells["Saliency"]["best"] == leads, (name, column)
        # with zeroing, ShapleyValueSampling or Lime best or tied in every removal column but these, where CD is best
        exceptions = {"lstm-sst2": ("del", "NAOPC comp"), "transformer-sst2": ("comp", "del", "NAOPC comp"),
                      "transformer-synthetic": ("ins",)}
        for column in removal:
            cells = summary[column]
            leads = any(not cells[m]["differs"] for m in ("ShapleyValueSampling", "Lime"))
            exception = column in exceptions.get(name, ())
            assert leads != exception, (name, column)
            if exception:
                assert cells["CD"]["best"]
        # ShapleyValueSampling best or tied in every removal column of textcnn-mr, with every removal
        if name == "textcnn-mr":
            assert all(not cells["ShapleyValueSampling"]["differs"] for column, cells in summary.items()
                       if column.split("@")[0] in removal)
        # in distribution (unk, ft), Occlusion best or tied in most removal columns of the two SST models
        if name in ("lstm-sst2", "bilstm-sst5"):
            in_distribution = [cells for column, cells in summary.items() if "@" in column]
            assert sum(not cells["Occlusion"]["differs"] for cells in in_distribution) > len(in_distribution) / 2
