"""TransformerLRP's AttnLRP against LXT, the authors' code (``lxt`` 2.1 on PyPI), on a BERT classifier LXT supports.

LXT 2.1 patches transformers 4.52's BERT and our package needs transformers 5, so LXT runs in its own venv, built
from the package registry by ``.ci/build_lxt_venv`` (at ``$CAPTUM_TEXT_EXT_LXT_VENV``, default ``.venv-lxt`` in the
repository) when it is missing; the test skips, saying why, only when that build fails (no registry). LXT's efficient
AttnLRP is the same rules as ours computed as activation × modified gradient without a stabilizer, so ours runs with
a vanishing one (ε = 1e-12, float64).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _transformer_models import SENTENCES, hf_classifier
from captum_text_ext import LayerTransformerLRP

REPOSITORY = Path(__file__).resolve().parents[2]
AGREEMENT = 1e-7
"""Largest difference from LXT's relevance, relative to its largest entry (measured: 8.2e-09; LXT's identity rule
has a stabilizer of its own, f(x) / (x + 1e-10))."""
CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "type_vocab_size", "num_labels", "pad_token_id", "layer_norm_eps",
               "hidden_act")


@pytest.fixture(scope="module")
def lxt_python() -> Path:
    """The LXT venv's python, built if missing (the test skips with the build's error when it cannot be built)."""
    venv = Path(os.environ.get("CAPTUM_TEXT_EXT_LXT_VENV", REPOSITORY / ".venv-lxt"))
    python = venv / "bin" / "python"
    if not python.exists():
        built = subprocess.run(
            ["bash", str(REPOSITORY / ".ci" / "build_lxt_venv"), str(venv)], capture_output=True, text=True,
            env={**os.environ, "PYTHON": sys.executable},
        )
        if built.returncode != 0:
            pytest.skip(f"the LXT venv could not be built from the package registry: {built.stderr.strip()[-400:]}")
    return python


def test_attnlrp_agrees_with_lxt_on_bert(lxt_python: Path, tmp_path: Path) -> None:
    bert = hf_classifier("bert", "eager", tmp_path / "bert")
    lengths = torch.tensor([len(s) for s in SENTENCES])
    ids = torch.zeros(len(SENTENCES), int(lengths.max()), dtype=torch.long)
    for row, sentence in enumerate(SENTENCES):
        ids[row, : len(sentence)] = torch.tensor(sentence)
    mask = (torch.arange(ids.shape[1]) < lengths.unsqueeze(1)).long()
    target = 1
    config = {key: getattr(bert.config, key) for key in CONFIG_KEYS}
    torch.save({"config": config, "state_dict": bert.state_dict(), "input_ids": ids, "attention_mask": mask,
                "target": target}, tmp_path / "in.pt")
    run = subprocess.run([str(lxt_python), str(Path(__file__).with_name("_lxt_bert.py")), str(tmp_path / "in.pt"),
                          str(tmp_path / "out.pt")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    theirs = torch.load(tmp_path / "out.pt")

    def logits(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = bert(input_ids=ids, attention_mask=mask).logits
        return out

    assert torch.allclose(theirs["logits"], logits(ids, mask), rtol=0, atol=1e-12)  # the same model
    ours = LayerTransformerLRP(logits, bert.bert.embeddings, rule="attnlrp", epsilon=1e-12).attribute(
        ids, target=target, additional_forward_args=(mask,))
    difference = float((ours - theirs["relevance"]).abs().max() / theirs["relevance"].abs().max())
    print(f"AttnLRP vs LXT 2.1 on BERT: largest difference {difference:.2e} of the largest relevance")
    assert difference <= AGREEMENT
