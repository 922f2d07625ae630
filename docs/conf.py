"""Sphinx configuration. CI builds with ``-W``: every warning is an error.

CI is offline, so intersphinx (links into the torch, captum and Python docs) is switched on only when
``CAPTUM_TEXT_EXT_DOCS_ONLINE=1``: an inventory download that fails would be a warning, hence an error.

Equations render offline: ``sphinx-mathjax-offline`` (in the ``docs`` extra) copies MathJax 3.2.2 into the built
docs' ``_static/mathjax`` and points ``mathjax_path`` there, so pages load no script from the network. The tutorials
render with their outputs through myst-nb with execution off: it reads the copies that
``python .ci/execute_notebooks.py tutorials --out docs/_generated/tutorials`` executed (``.ci/run`` does so once per
run), and the build stops with that command when a copy is missing or no longer matches its notebook.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from captum_text_ext._version import __version__  # noqa: E402

project = "captum_text_ext"
author = "the captum_text_ext developers"
copyright = "2026, the captum_text_ext developers"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "sphinx-mathjax-offline",
    "myst_nb",
]
if os.environ.get("CAPTUM_TEXT_EXT_DOCS_ONLINE") == "1":
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://pytorch.org/docs/stable", None),
        "captum": ("https://captum.ai/api", None),
    }

autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
# The packages re-export their public classes (``captum_text_ext.decomposition.OpTable`` is
# ``captum_text_ext.decomposition.guard.OpTable``), and both pages document them, so an unqualified name in a type hint
# finds the same class twice; Sphinx reports that as "more than one target" (ref.python). Either target is right.
suppress_warnings = ["ref.python"]

exclude_patterns = ["_build", "_generated/*.rst"]
html_theme = "alabaster"
html_static_path = ["_static"]
nb_execution_mode = "off"
"""myst-nb renders the executed copies as they are (see the module docstring)."""
myst_enable_extensions = ["dollarmath", "amsmath"]
"""The notebooks' ``$...$`` and ``$$...$$`` are math, typeset by the same MathJax as the rest of the docs."""


def _check_executed_tutorials() -> None:
    """Every tutorial has an executed copy in ``docs/_generated/tutorials`` with its code cells unchanged and run.

    Raises:
        RuntimeError: naming the notebooks that are missing, stale or not executed, and the command that executes
            them.
    """
    import nbformat

    problems = []
    for source in sorted((ROOT / "tutorials").glob("*.ipynb")):
        executed_path = ROOT / "docs" / "_generated" / "tutorials" / source.name
        if not executed_path.is_file():
            problems.append(f"{source.name}: no executed copy")
            continue
        code = [c for c in nbformat.read(source, as_version=4).cells if c.cell_type == "code"]
        executed = [c for c in nbformat.read(executed_path, as_version=4).cells if c.cell_type == "code"]
        if [c.source for c in code] != [c.source for c in executed]:
            problems.append(f"{source.name}: the executed copy is of an older version")
        elif any(c.execution_count is None for c in executed):
            problems.append(f"{source.name}: the copy has cells that never ran")
    if problems:
        raise RuntimeError(
            "The docs render the executed tutorials; run `python .ci/execute_notebooks.py tutorials --out "
            "docs/_generated/tutorials` first (" + "; ".join(problems) + ")"
        )


_check_executed_tutorials()


def _write_models_table() -> None:
    """Render ``benchmarks/results/models/*.json`` (what ``captum-text-ext train --record`` wrote) as an RST table
    for the models page, so the docs show exactly the recorded numbers."""
    import json

    rows = []
    for path in sorted((ROOT / "benchmarks" / "results" / "models").glob("*.json")):
        result = json.loads(path.read_text(encoding="utf-8"))["results"]
        accuracy = f"{result['test_accuracy']:.4f}"
        if "binary_accuracy_non_neutral" in result:
            accuracy += f" (binary {result['binary_accuracy_non_neutral']:.4f})"
        rows.append(
            [result["name"], result["dataset"], accuracy, f"≥ {result['target_accuracy']:.2f}",
             result["paper_accuracy"], f"{result['train_seconds'] / 60:.1f} min"]
        )
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [["model", "data", "test accuracy", "target", "paper", "training time"], *rows]:
        lines.append("   * - " + row[0])
        lines += [f"     - {cell}" for cell in row[1:]]
    generated = ROOT / "docs" / "_generated"
    generated.mkdir(exist_ok=True)
    (generated / "models_table.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")


_write_models_table()


def _write_supported_ops_table() -> None:
    """Render what each decomposition method does with every op group (read from the rule tables) as an RST table."""
    from captum_text_ext.decomposition import supported_ops

    rows = supported_ops()
    methods = list(rows[0].rules)
    widths = " ".join(["15", "20"] + [str(65 // len(methods))] * len(methods))
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    lines += ["   * - group", "     - ops"] + [f"     - {method}" for method in methods]
    for row in rows:
        ops = ", ".join(f"``{op}``" for op in row.ops)
        lines += [f"   * - {row.group}", f"     - {ops}"] + [f"     - {row.rules[m]}" for m in methods]
    generated = ROOT / "docs" / "_generated"
    generated.mkdir(exist_ok=True)
    (generated / "supported_ops_table.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_supported_modules_table(methods, generated)


def _write_supported_modules_table(methods: list, generated: Path) -> None:
    """Render the ops each common ``nn`` module calls (recorded by running it) and each method's rules for them."""
    from captum_text_ext.decomposition import supported_modules

    widths = " ".join(["22", "28"] + [str(50 // len(methods))] * len(methods))
    lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    lines += ["   * - module", "     - ops (group)"] + [f"     - {method}" for method in methods]
    for row in supported_modules():
        ops = ", ".join(f"``{op}`` ({group})" for op, group in zip(row.ops, row.groups))
        lines += [f"   * - ``{row.module}``", f"     - {ops}"] + [f"     - {row.rules[m]}" for m in methods]
    (generated / "supported_modules_table.rst").write_text("\n".join(lines) + "\n", encoding="utf-8")


_write_supported_ops_table()


def _write_method_guide_tables() -> None:
    """The method guide's opening section (which metric to believe; every metric's verdict per model) and each
    answer's whole picture, generated from the recorded leaderboard so that the guide never quotes one column
    alone."""
    from captum_text_ext.benchmarks.verdicts import GUIDE_ANSWERS, answer_rst, guide_tables_rst, load_leaderboard

    leaderboard = load_leaderboard(ROOT / "benchmarks" / "results" / "leaderboard" / "leaderboard.json")
    generated = ROOT / "docs" / "_generated"
    (generated / "which_method").mkdir(parents=True, exist_ok=True)
    (generated / "which_method_tables.rst").write_text(guide_tables_rst(leaderboard), encoding="utf-8")
    for key, methods in GUIDE_ANSWERS.items():
        (generated / "which_method" / f"{key}.rst").write_text(answer_rst(leaderboard["results"], methods),
                                                               encoding="utf-8")


_write_method_guide_tables()


def _cells(row: str) -> list:
    """The cells of a Markdown table row, split on unescaped pipes."""
    import re

    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def _markdown_to_rst(markdown: str) -> str:
    """A results Markdown body as RST: headings become rubrics, pipe tables list-tables, other lines paragraphs.

    The results writers escape table cells so that the escapes hold in both syntaxes
    (:func:`captum_text_ext.benchmarks.markdown.markdown_cell`).
    """
    lines = markdown.split("-->", 1)[-1].strip().splitlines()
    out = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("|"):
            block = []
            while index < len(lines) and lines[index].startswith("|"):
                block.append(lines[index])
                index += 1
            out += [".. list-table::", "   :header-rows: 1", ""]
            for row in [_cells(r) for r in block if set(r) - set("|-: ")]:
                out.append("   * - " + row[0])
                out += [f"     - {cell}" for cell in row[1:]]
            out.append("")
            continue
        out.append(f".. rubric:: {line.lstrip('#').strip()}\n" if line.startswith("#") else line)
        index += 1
    return "\n".join(out) + "\n"


def _write_benchmark_results() -> None:
    """Render the benchmark results files (``captum-text-ext benchmark ...``) as RST for the method pages, so the
    docs show exactly the recorded numbers; the leaderboard page gets the ground-truth summary of ``planted.json``
    first, and the leaderboard's own copy of it is left out."""
    from captum_text_ext.benchmarks.planted import GROUND_TRUTH_HEADING, ground_truth_section

    results = ROOT / "benchmarks" / "results"
    generated = ROOT / "docs" / "_generated"
    generated.mkdir(exist_ok=True)
    murdoch = ("fig4_word_scores.png", "fig1_negation.png", "fig2_dissenting.png", "fig3_compositionality.png")
    for name, path, command, figures in [
        ("arras2017_deletion", results / "arras2017" / "deletion.md", "arras2017", ()),
        ("arras2017_table1", results / "arras2017" / "table1.md", "arras2017", ()),
        ("arras2017_examples", results / "arras2017" / "examples.md", "arras2017", ()),
        ("lrp_speed", results / "lrp_speed.md", "lrp-speed", ()),
        ("cd_speed", results / "cd_speed.md", "cd-speed", ()),
        ("murdoch2018", results / "murdoch2018" / "murdoch2018.md", "murdoch2018", murdoch),
        *[(f"hechtlinger2016_{part}", results / "hechtlinger2016" / f"{part}.md", "hechtlinger2016", ())
          for part in ("tables", "agreement", "table1", "speed")],
        ("yuan2019_tables", results / "yuan2019" / "tables.md", "yuan2019", ()),
        ("hiddenunit_speed", results / "hiddenunit_speed.md", "hiddenunit-speed", ()),
        ("corpus_speed", results / "corpus_speed.md", "corpus", ()),
        ("leaderboard", results / "leaderboard" / "leaderboard.md", "leaderboard", ()),
        ("planted", results / "planted" / "planted.md", "planted", ()),
        ("seed_spread", results / "seed_spread" / "seed_spread.md", "seed-spread", ()),
        ("planted_transformer_lrp", results / "planted_transformer_lrp" / "planted.md", "planted", ()),
    ]:
        if not path.is_file():
            text = f"Not measured yet: run ``captum-text-ext benchmark {command}``.\n"
        else:
            markdown = path.read_text(encoding="utf-8")
            if name == "leaderboard":  # the page shows the ground truth first, from planted.json itself (below)
                markdown = _without_section(markdown, GROUND_TRUTH_HEADING)
            text = _markdown_to_rst(markdown)
            for figure in figures:  # the plots the same run wrote beside the Markdown
                text += f"\n.. image:: /../{(path.parent / figure).relative_to(ROOT).as_posix()}\n   :alt: {figure}\n"
        (generated / f"{name}.rst").write_text(text, encoding="utf-8")
    summary = "\n".join(ground_truth_section(results / "planted" / "planted.json")[1:])  # the page has the heading
    (generated / "planted_summary.rst").write_text(_markdown_to_rst(summary), encoding="utf-8")


def _without_section(markdown: str, heading: str) -> str:
    """``markdown`` without the section that starts with the line ``heading`` (up to the next ``## `` heading)."""
    lines = markdown.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(heading)]
    if not starts:
        return markdown
    end = next((i for i in range(starts[0] + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[: starts[0]] + lines[end:]) + "\n"


_write_benchmark_results()


def _resolves_to(dotted: str, value: object) -> bool:
    """Whether the documented name ``dotted`` (``module.attribute``) is the object ``value``."""
    import importlib

    module_name, _, attribute = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute, None) is value
    except ImportError:
        return False


def _check_public_names(app: object, env: object) -> None:
    """Warn (an error under ``-W``) about every public name — in the ``__all__`` of a public module — that the API
    reference does not document, under its own name or where it is defined."""
    import importlib
    import pkgutil

    from sphinx.util import logging

    import captum_text_ext

    documented = set(env.get_domain("py").objects)  # type: ignore[attr-defined]
    modules = ["captum_text_ext"] + [
        info.name for info in pkgutil.walk_packages(captum_text_ext.__path__, "captum_text_ext.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    missing = []
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            value = getattr(module, name)
            names = {f"{module_name}.{name}"}
            if getattr(value, "__module__", None) and getattr(value, "__qualname__", None):
                names.add(f"{value.__module__}.{value.__qualname__}")
            documented_here = names & documented or any(  # data and aliases: documented where they are defined
                d.startswith(f"{module_name}.") and d.endswith(f".{name}") for d in documented
            ) or any(_resolves_to(d, value) for d in documented if d.endswith(f".{name}"))  # re-exported data
            if not documented_here and not name.startswith("__"):
                missing.append(f"{module_name}.{name}")
    if missing:
        logging.getLogger(__name__).warning("public names missing from the API reference: %s", ", ".join(missing))


def setup(app: object) -> None:
    app.connect("env-check-consistency", _check_public_names)  # type: ignore[attr-defined]
