"""Every docstring example in the package runs (the examples are documentation, so they must be true)."""

import doctest
import importlib
import pkgutil

import pytest
import torch

import captum_text_ext

MODULES = sorted(info.name for info in pkgutil.walk_packages(captum_text_ext.__path__, "captum_text_ext."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    torch.manual_seed(0)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
