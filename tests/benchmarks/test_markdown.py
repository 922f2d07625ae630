"""Words escaped for the results tables."""

from captum_text_ext.benchmarks.markdown import markdown_cell


def test_markdown_cells_survive_markdown_and_rst() -> None:
    assert markdown_cell("``") == "\\`\\`"
    assert markdown_cell("-lrb-") == "\\-lrb-"
    assert markdown_cell("n't") == "n't"
