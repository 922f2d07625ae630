"""The Arras et al. (2017) weights: loaded with an unpickler that admits only numpy arrays."""

from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from captum_text_ext.datasets import CorruptDatasetError, DatasetNotFoundError
from captum_text_ext.datasets.arras_lrp import (
    ARRAS_LRP_ARRAYS,
    NumpyOnlyUnpickler,
    arras_lrp_to_torch,
    load_arras_lrp_model,
)


class _Exploit:
    """Unpickling this would run ``os.system``."""

    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def _write(root: Path, obj: object, compress: bool = True) -> Path:
    (root / "arras_lrp").mkdir(parents=True, exist_ok=True)
    data = pickle.dumps(obj, protocol=4)
    if compress:
        path = root / "arras_lrp" / "model.gz"
        path.write_bytes(gzip.compress(data))
    else:
        path = root / "arras_lrp" / "model"
        path.write_bytes(data)
    return path


def _fake(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape) for name, shape in ARRAS_LRP_ARRAYS.items()}


def test_the_released_file_loads(shared_data_dir: Path) -> None:
    arrays = load_arras_lrp_model(shared_data_dir)
    assert {name: a.shape for name, a in arrays.items()} == ARRAS_LRP_ARRAYS
    assert all(a.dtype == np.float64 and np.isfinite(a).all() for a in arrays.values())


def test_a_malicious_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    _write(tmp_path, {"Wxh_Left": _Exploit()})
    with pytest.raises(CorruptDatasetError, match="refusing to unpickle posix.system|refusing to unpickle os.system"):
        load_arras_lrp_model(tmp_path)
    for payload in (print, eval, Path("x"), torch.zeros(1)):
        with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle"):
            NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(payload))).load()


def test_a_plain_pickle_of_the_right_arrays_loads(tmp_path: Path) -> None:
    fake = _fake()
    _write(tmp_path, fake, compress=False)
    arrays = load_arras_lrp_model(tmp_path)
    assert all(np.array_equal(arrays[name], fake[name]) for name in ARRAS_LRP_ARRAYS)


def test_wrong_contents_are_reported(tmp_path: Path) -> None:
    fake = _fake()
    fake["Why_Left"] = fake["Why_Left"].astype(np.float32)
    _write(tmp_path, fake)
    with pytest.raises(CorruptDatasetError, match=r"expected Why_Left to be float64 \(5, 60\), but got float32"):
        load_arras_lrp_model(tmp_path)
    _write(tmp_path, [1, 2])
    with pytest.raises(CorruptDatasetError, match="expected a dict with keys"):
        load_arras_lrp_model(tmp_path)
    (tmp_path / "arras_lrp" / "model.gz").write_bytes(b"not gzip")
    with pytest.raises(CorruptDatasetError, match="not a valid pickle"):
        load_arras_lrp_model(tmp_path)
    with pytest.raises(DatasetNotFoundError, match="arras_lrp"):
        load_arras_lrp_model(tmp_path / "elsewhere")


def test_torch_modules_reorder_the_gates() -> None:
    fake = _fake(1)
    lstm, linear = arras_lrp_to_torch(fake)
    hidden = 60
    i, g, f, o = (fake["Wxh_Right"][k * hidden : (k + 1) * hidden] for k in range(4))
    assert np.array_equal(lstm.weight_ih_l0_reverse.detach().numpy(), np.concatenate([i, f, g, o]))
    assert np.array_equal(linear.weight.detach().numpy()[:, hidden:], fake["Why_Right"])
    assert lstm.weight_ih_l0.dtype == torch.float64 and linear.bias is None
