"""Installs captum_text_ext; the version is read from ``captum_text_ext/_version.py`` (defined once)."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "captum_text_ext" / "_version.py").read_text(encoding="utf-8"), re.M
).group(1)

DOCS = [
    "sphinx>=7.2",
    "myst-nb>=1.1",  # renders the executed tutorials (execution off)
    "sphinx-mathjax-offline>=0.0.2",  # serves MathJax 3.2.2 from the built docs: equations render offline
]
NOTEBOOK = ["ipython>=8"]
# Hugging Face models and the zoo's transformers. transformers 4.46 is the first release with SDPA attention for BERT,
# RoBERTa and DistilBERT and still runs on torch 2.3; transformers 5 needs torch >= 2.6 (tested: 5.25.0, tokenizers
# 0.23.3, safetensors 0.8.0 with torch 2.13.0).
TRANSFORMERS = ["transformers>=4.46", "tokenizers>=0.20", "safetensors>=0.4.1"]
DEV = [
    "pytest>=8",
    "hypothesis>=6",
    "nbclient>=0.10",
    "nbformat>=5.9",
    "ipykernel>=6.29",
    "import-linter>=2.1",
    "mypy>=1.13",
    *DOCS,
    *NOTEBOOK,
]

setup(
    name="captum_text_ext",
    version=VERSION,
    description="Captum extensions for explaining PyTorch text classifiers: LSTM LRP, contextual decomposition, "
    "hidden-unit optimization and gradient linear surrogates.",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=("captum_text_ext", "captum_text_ext.*")),
    package_data={"captum_text_ext": ["py.typed"]},
    install_requires=[
        "torch>=2.3",
        "captum>=0.9",
        "numpy",
        "scipy",
        "scikit-learn",
        "matplotlib",
        "tqdm",
        "safetensors>=0.4.1",  # the shards of `captum-text-ext attribute`
    ],
    extras_require={"dev": DEV, "docs": DOCS, "notebook": NOTEBOOK, "transformers": TRANSFORMERS},
    entry_points={"console_scripts": ["captum-text-ext=captum_text_ext.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Typing :: Typed",
    ],
)
