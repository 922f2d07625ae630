"""TransformerClassifier: the zoo's BERT-style model read with ``(token_ids, lengths)``; and the package without the
``transformers`` extra."""

import subprocess
import sys
import textwrap

import pytest
import torch
from _transformer_models import require_extra

from captum_text_ext.models import TransformerClassifier

IDS = torch.tensor([[2, 7, 8, 9, 3], [2, 10, 3, 0, 0]])
LENGTHS = torch.tensor([5, 3])


def _model(**config: object) -> TransformerClassifier:
    require_extra()
    torch.manual_seed(0)
    return TransformerClassifier(**{"vocab_size": 12, "num_classes": 3, "hidden_size": 8, "num_heads": 2,
                                    "max_length": 8, **config}).double().eval()


def test_it_is_a_bert_classifier_whose_attention_is_set_in_the_config() -> None:
    transformers = require_extra()
    for attention in ("eager", "sdpa"):
        model = _model(attn_implementation=attention)
        assert isinstance(model.hf_model, transformers.BertForSequenceClassification)
        assert model.hf_model.config._attn_implementation == attention
        assert model.embeddings is model.hf_model.bert.embeddings
        assert f"attn_implementation='{attention}'" in repr(model)
    config = _model(intermediate_size=None).hf_model.config
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (2, 8, 32)
    assert (config.type_vocab_size, config.max_position_embeddings, config.num_labels) == (1, 8, 3)


def test_eager_and_sdpa_share_the_state_dict_and_the_logits() -> None:
    eager, sdpa = _model(attn_implementation="eager"), _model(attn_implementation="sdpa")
    for (key, a), (_, b) in zip(eager.state_dict().items(), sdpa.state_dict().items()):
        assert torch.equal(a, b), key
    assert torch.allclose(eager(IDS, LENGTHS), sdpa(IDS, LENGTHS), rtol=0, atol=1e-12)


def test_lengths_become_the_attention_mask() -> None:
    model = _model()
    masked = model(IDS, LENGTHS)
    assert torch.equal(model(IDS[:1]), model(IDS[:1], LENGTHS[:1]))  # no lengths: every token is read
    assert not torch.allclose(model(IDS[1:]), masked[1:])  # reading the padding changes the logits
    assert torch.allclose(model(IDS[1:, :3]), masked[1:], rtol=0, atol=1e-12)


def test_reset_parameters_draws_berts_initialization_again() -> None:
    model = _model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(1.0)
    model.reset_parameters()
    embeddings = model.hf_model.bert.embeddings
    assert embeddings.word_embeddings.weight.dtype == torch.float64
    assert not embeddings.word_embeddings.weight[0].any()  # the pad row
    assert torch.equal(embeddings.LayerNorm.weight, torch.ones(8, dtype=torch.float64))
    assert not model.hf_model.classifier.bias.any()
    assert 0.005 < float(model.hf_model.classifier.weight.detach().std()) < 0.05  # normal(0, 0.02)


def test_bad_arguments_and_long_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match=r"`attn_implementation` to be one of \('eager', 'sdpa'\), but got 'flash'"):
        _model(attn_implementation="flash")
    with pytest.raises(ValueError, match="`num_heads` to divide `hidden_size`, but got 3 and 8"):
        _model(num_heads=3)
    with pytest.raises(ValueError, match="at most max_length=8 tokens per sentence .* but got a batch of 9"):
        _model()(torch.ones(1, 9, dtype=torch.long))


def test_the_package_works_without_the_extra_and_says_how_to_install_it() -> None:
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        class Blocker(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("transformers", "tokenizers"):
                    raise ImportError(f"No module named {name!r} (blocked)")

        sys.meta_path.insert(0, Blocker())
        import captum_text_ext, captum_text_ext.cli, captum_text_ext.explain
        from captum_text_ext.datasets.wordpiece import WordPieceTokenizer
        from captum_text_ext.models import TransformerClassifier, build_model
        from captum_text_ext.models.zoo import ZOO
        build_model("lstm", {"vocab_size": 5, "embedding_dim": 2, "hidden_size": 2, "num_classes": 2})
        for attempt in (lambda: TransformerClassifier(5, 2), lambda: WordPieceTokenizer.train([["a"]], 10)):
            try:
                attempt()
            except ImportError as err:
                print(err)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("transformers", "tokenizers")))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    hint = 'install the transformers extra: pip install "captum_text_ext[transformers]"'
    assert done.stdout.splitlines() == [
        f"TransformerClassifier needs the `transformers` package; {hint}",
        f"WordPiece tokenizers need the `tokenizers` package; {hint}",
        "[]",
    ]
