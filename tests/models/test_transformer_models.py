"""The tiny transformer classifiers of ``tests/_transformer_models.py`` that the transformer methods are tested on:
they run, a padded batch gives each sentence its logits alone, and what they claim to be they are."""

import contextlib
from pathlib import Path
from unittest import mock

import pytest
import torch
from _transformer_models import (
    CASES,
    HF_ARCHITECTURES,
    HF_CASES,
    NUM_CLASSES,
    SENTENCES,
    UserTransformerClassifier,
    build_case,
    hf_classifier,
    hf_config,
    require_extra,
    zero_biases,
)


@pytest.mark.parametrize("name", CASES)
def test_a_padded_batch_gives_each_sentence_its_logits_alone(name: str, tmp_path: Path) -> None:
    case = build_case(name, tmp_path)
    ids, mask = case.batch()
    assert ids.shape == (len(SENTENCES), max(map(len, SENTENCES)))
    batched = case.model(ids, mask)
    assert batched.shape == (len(SENTENCES), NUM_CLASSES) and batched.dtype == torch.float64
    for row, sentence in enumerate(SENTENCES):
        alone = case.model(*case.batch([sentence]))
        assert torch.allclose(batched[row], alone[0], rtol=0, atol=1e-12), (row, batched[row] - alone[0])
    assert not torch.allclose(batched[0], batched[1])  # the sentences are told apart


@pytest.mark.parametrize("name", CASES)
def test_ids_at_masked_positions_never_change_the_logits(name: str, tmp_path: Path) -> None:
    case = build_case(name, tmp_path)
    ids, mask = case.batch()
    padding = ids == case.pad_id
    noisy = ids.masked_fill(padding, 7)
    assert int(padding.sum()) > 0
    assert torch.allclose(case.model(noisy, mask), case.model(ids, mask), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_embeddings_is_the_module_the_encoder_reads(name: str, tmp_path: Path) -> None:
    case = build_case(name, tmp_path)
    seen = []
    handle = case.embeddings.register_forward_hook(lambda module, inputs, output: seen.append(output))
    try:
        case.model(*case.batch())
    finally:
        handle.remove()
    assert len(seen) == 1 and seen[0].shape[:2] == case.batch()[0].shape and seen[0].dtype == torch.float64
    assert not case.model.training and all(p.dtype == torch.float64 for p in case.model.parameters())


@pytest.mark.parametrize("architecture", HF_ARCHITECTURES)
def test_eager_and_sdpa_share_weights_and_logits(architecture: str, tmp_path: Path) -> None:
    eager, sdpa = (build_case(f"{architecture}-{attention}", tmp_path) for attention in ("eager", "sdpa"))
    assert eager.hf_model.config._attn_implementation == "eager"
    assert sdpa.hf_model.config._attn_implementation == "sdpa"
    for (key, a), (_, b) in zip(eager.model.state_dict().items(), sdpa.model.state_dict().items()):
        assert torch.equal(a, b), key
    assert torch.allclose(eager.model(*eager.batch()), sdpa.model(*sdpa.batch()), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", HF_CASES)
def test_from_pretrained_gives_back_the_saved_model(name: str, tmp_path: Path) -> None:
    transformers = require_extra()
    architecture, attention = name.split("-")
    loaded = hf_classifier(architecture, attention, tmp_path / "saved", seed=3)
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == ["config.json", "model.safetensors"]
    torch.manual_seed(3)
    fresh = type(loaded)(hf_config(architecture, attention)).double().eval()
    assert isinstance(loaded, transformers.PreTrainedModel) and not loaded.training
    assert loaded.config._attn_implementation == attention
    for (key, a), (_, b) in zip(loaded.state_dict().items(), fresh.state_dict().items()):
        assert a.dtype == torch.float64 and torch.equal(a, b), key
    case = build_case(name, tmp_path / "case")
    ids, mask = case.batch()
    logits = loaded(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(logits, fresh(input_ids=ids, attention_mask=mask).logits)
    default = type(loaded).from_pretrained(tmp_path / "saved")
    assert default.config._attn_implementation == "sdpa"  # the saved config does not keep the implementation


@pytest.mark.parametrize("norm_first", [False, True])
def test_user_model_fast_path_and_nested_tensors_agree_with_the_plain_path(norm_first: bool) -> None:
    torch.manual_seed(0)
    plain = UserTransformerClassifier(norm_first).double().eval()
    expected_warning = pytest.warns(UserWarning, match="enable_nested_tensor is True, but self.use_nested_tensor is "
                                    "False because encoder_layer.norm_first was True")
    with expected_warning if norm_first else contextlib.nullcontext():
        nested = UserTransformerClassifier(norm_first, enable_nested_tensor=True).double().eval()
    nested.load_state_dict(plain.state_dict())
    ids, mask = build_case("torch-prenorm" if norm_first else "torch-postnorm", Path(".")).batch()
    with_grad = plain(ids, mask)
    fast_path = mock.patch.object(torch, "_transformer_encoder_layer_fwd", wraps=torch._transformer_encoder_layer_fwd)
    with torch.no_grad(), fast_path as fused:  # eval mode without grad: nn.TransformerEncoderLayer's fast path
        assert torch.allclose(plain(ids, mask), with_grad, rtol=0, atol=1e-12)
        assert fused.call_count == 2  # one fused call per layer, pre-norm or post-norm
        assert torch.allclose(nested(ids, mask), with_grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", CASES)
def test_zero_biases_zeroes_every_bias_and_nothing_else(name: str, tmp_path: Path) -> None:
    case = build_case(name, tmp_path)
    before = {key: value.clone() for key, value in case.model.state_dict().items()}
    names = zero_biases(case.model)
    assert any("LayerNorm" in n or "norm" in n for n in names) and any("classifier" in n for n in names)
    for key, value in case.model.named_parameters():
        if key in names:
            assert not value.any(), key
        else:
            assert torch.equal(value, before[key]), key
