"""Run in the LXT venv (``.ci/build_lxt_venv``), not by pytest: LXT's AttnLRP (``lxt.efficient``, lxt 2.1 on
transformers 4.52.4) on a BERT classifier, written as LXT's README shows it: patch ``modeling_bert``, run the model
with the embeddings output as a leaf, backpropagate the target logit, relevance = activation × gradient.

    python _lxt_bert.py IN.pt OUT.pt

``IN.pt`` holds ``config`` (a ``BertConfig`` dict), ``state_dict``, ``input_ids``, ``attention_mask`` and
``target``; ``OUT.pt`` gets ``relevance`` (the embeddings output's, ``(N, T, D)``) and ``logits``. This file imports
nothing of captum_text_ext.
"""

import sys
import types

import torch


def _stand_in_torchvision() -> None:
    """lxt 2.1 builds its ViT patch table from ``torchvision.models.vision_transformer.nn`` when ``lxt.efficient`` is
    imported; BERT does not use it, and torchvision is not installed: a stand-in module holding ``torch.nn``."""
    vision_transformer = types.ModuleType("torchvision.models.vision_transformer")
    vision_transformer.nn = torch.nn
    models = types.ModuleType("torchvision.models")
    models.vision_transformer = vision_transformer
    package = types.ModuleType("torchvision")
    package.models = models
    sys.modules.update({"torchvision": package, "torchvision.models": models,
                        "torchvision.models.vision_transformer": vision_transformer})


def main(source: str, destination: str) -> None:
    from transformers import BertConfig
    from transformers.models.bert import modeling_bert

    _stand_in_torchvision()  # after transformers, which looks for torchvision's real package
    from lxt.efficient import monkey_patch

    monkey_patch(modeling_bert)
    given = torch.load(source)
    config = BertConfig(**given["config"], attn_implementation="eager")
    model = modeling_bert.BertForSequenceClassification(config).double().eval()
    missing, unexpected = model.load_state_dict(given["state_dict"], strict=False)
    if unexpected or [key for key in missing if not key.endswith("_ids")]:
        raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
    captured = {}

    def leaf(module, args, output):
        captured["embeddings"] = output.detach().requires_grad_(True)
        return captured["embeddings"]

    handle = model.bert.embeddings.register_forward_hook(leaf)
    logits = model(input_ids=given["input_ids"], attention_mask=given["attention_mask"]).logits
    handle.remove()
    logits[:, given["target"]].sum().backward()
    embeddings = captured["embeddings"]
    torch.save({"relevance": (embeddings * embeddings.grad).detach(), "logits": logits.detach()}, destination)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
