"""Every docstring example in the package runs (the examples are documentation, so they must be true)."""

import doctest
import importlib
import pkgutil

import pytest
import torch
from _transformer_models import require_extra

import captum_text_ext

MODULES = sorted(info.name for info in pkgutil.walk_packages(captum_text_ext.__path__, "captum_text_ext."))
EXTRA_EXAMPLES = {"captum_text_ext.datasets.wordpiece": "tokenizers",
                  "captum_text_ext.models.transformer_classifier": "transformers"}
"""Modules whose examples need a package of the ``transformers`` extra."""


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    if name in EXTRA_EXAMPLES:
        require_extra(EXTRA_EXAMPLES[name])
    torch.manual_seed(0)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
