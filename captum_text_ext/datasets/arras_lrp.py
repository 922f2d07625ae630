r"""The bi-LSTM weights released with Arras et al. (2017), ``arras_lrp/model[.gz]``, read without trusting pickle.

The file is a pickle of a ``dict`` of float64 numpy arrays (trained by Li et al., 2016, converted by Arras et al.):

- ``Wxh_Left``, ``Wxh_Right`` :math:`(4H, E)` and ``Whh_Left``, ``Whh_Right`` :math:`(4H, H)`: input and recurrent
  weights of the left (forward) and right (backward) encoder, gate order **i, g, f, o** (PyTorch's is i, f, g, o);
- ``bxh_*``, ``bhh_*`` :math:`(4H,)`: the two biases;
- ``Why_Left``, ``Why_Right`` :math:`(C, H)`: the output layer (no bias); the score is
  :math:`W_{hy}^{\text{left}} h^{\rightarrow}_T + W_{hy}^{\text{right}} h^{\leftarrow}_T`.

:math:`E = H = 60`, :math:`C = 5`. Unpickling runs code, so :func:`load_arras_lrp_model` uses an unpickler that
admits only what a numpy array needs (``numpy.ndarray``, ``numpy.dtype`` and numpy's array reconstructor) and refuses
everything else. The trained word embeddings were not released with the weights (see ``shared/data/README.md``).
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import nn

from captum_text_ext.datasets._paths import (
    CorruptDatasetError,
    PathLike,
    find_dataset_file,
    open_binary,
)

__all__ = ["ARRAS_LRP_ARRAYS", "NumpyOnlyUnpickler", "arras_lrp_to_torch", "load_arras_lrp_model"]

ARRAS_LRP_ARRAYS: Dict[str, Tuple[int, ...]] = {
    "Wxh_Left": (240, 60),
    "Whh_Left": (240, 60),
    "bxh_Left": (240,),
    "bhh_Left": (240,),
    "Wxh_Right": (240, 60),
    "Whh_Right": (240, 60),
    "bxh_Right": (240,),
    "bhh_Right": (240,),
    "Why_Left": (5, 60),
    "Why_Right": (5, 60),
}
"""The arrays of the released model and their shapes."""

_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array reconstructor, wherever this numpy version keeps it


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that admits numpy arrays and dtypes (and plain containers) and refuses every other global.

    Raises:
        pickle.UnpicklingError: for any global other than ``numpy.ndarray``, ``numpy.dtype`` and numpy's
            ``multiarray._reconstruct`` (under ``numpy.core`` or ``numpy._core``).

    Examples:
        >>> data = pickle.dumps({"w": np.arange(3.0)})
        >>> NumpyOnlyUnpickler(io.BytesIO(data)).load()["w"]
        array([0., 1., 2.])
        >>> NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(print))).load()
        Traceback (most recent call last):
        ...
        _pickle.UnpicklingError: refusing to unpickle builtins.print: only numpy arrays and dtypes are admitted
    """

    _ALLOWED: Dict[Tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: only numpy arrays and dtypes are admitted"
            ) from None


def load_arras_lrp_model(root: Optional[PathLike] = None) -> Dict[str, np.ndarray]:
    """Load the bi-LSTM weights of Arras et al. (2017) as float64 numpy arrays (gate order i, g, f, o).

    Args:
        root: an explicit data directory holding ``arras_lrp/model[.gz]`` (default: ``$CAPTUM_TEXT_EXT_DATA``, then
            ``~/.cache/captum_text_ext``).

    Returns:
        The arrays by name (:data:`ARRAS_LRP_ARRAYS`).

    Raises:
        DatasetNotFoundError: when the file is in none of the directories searched.
        CorruptDatasetError: when the file is not a pickle of exactly these float64 arrays, or holds anything else
            (the unpickler refuses every global but numpy's array and dtype).

    Examples:
        >>> arrays = load_arras_lrp_model()   # doctest: +SKIP
        >>> arrays["Wxh_Left"].shape          # doctest: +SKIP
        (240, 60)
    """
    path = find_dataset_file("arras_lrp", "model", root)
    try:
        with open_binary(path) as handle:
            payload = handle.read()
        obj = NumpyOnlyUnpickler(io.BytesIO(payload)).load()
    except pickle.UnpicklingError as err:
        raise CorruptDatasetError(path, None, str(err)) from err
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise CorruptDatasetError(path, None, f"not a valid pickle of numpy arrays ({err})") from err
    if not isinstance(obj, dict) or set(obj) != set(ARRAS_LRP_ARRAYS):
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise CorruptDatasetError(path, None, f"expected a dict with keys {sorted(ARRAS_LRP_ARRAYS)}, but got {got}")
    for name, shape in ARRAS_LRP_ARRAYS.items():
        array = obj[name]
        if not isinstance(array, np.ndarray) or array.dtype != np.float64 or array.shape != shape:
            got = f"{array.dtype} {array.shape}" if isinstance(array, np.ndarray) else type(array).__name__
            raise CorruptDatasetError(path, None, f"expected {name} to be float64 {shape}, but got {got}")
    return {name: obj[name] for name in ARRAS_LRP_ARRAYS}


def _igfo_to_ifgo(array: np.ndarray) -> np.ndarray:
    i, g, f, o = np.split(array, 4, axis=0)
    return np.concatenate([i, f, g, o], axis=0)


def arras_lrp_to_torch(arrays: Dict[str, np.ndarray], dtype: torch.dtype = torch.float64) -> Tuple[nn.LSTM, nn.Linear]:
    """The released model as PyTorch modules: ``nn.LSTM(60, 60, bidirectional=True, batch_first=True)`` with the
    gates reordered from i, g, f, o to PyTorch's i, f, g, o, and ``nn.Linear(120, 5, bias=False)`` on the concatenated
    final states ``[h_n[0], h_n[1]]``.

    Args:
        arrays: from :func:`load_arras_lrp_model`.
        dtype: the modules' dtype.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> fake = {name: rng.standard_normal(shape) for name, shape in ARRAS_LRP_ARRAYS.items()}
        >>> lstm, linear = arras_lrp_to_torch(fake)
        >>> lstm.weight_ih_l0.shape, linear.weight.shape
        (torch.Size([240, 60]), torch.Size([5, 120]))
    """
    lstm = nn.LSTM(60, 60, bidirectional=True, batch_first=True).to(dtype)
    linear = nn.Linear(120, 5, bias=False).to(dtype)
    with torch.no_grad():
        for side, suffix in (("Left", ""), ("Right", "_reverse")):
            for ours, theirs in (("weight_ih", "Wxh"), ("weight_hh", "Whh"), ("bias_ih", "bxh"), ("bias_hh", "bhh")):
                value = torch.from_numpy(_igfo_to_ifgo(arrays[f"{theirs}_{side}"])).to(dtype)
                getattr(lstm, f"{ours}_l0{suffix}").copy_(value)
        linear.weight.copy_(torch.from_numpy(np.concatenate([arrays["Why_Left"], arrays["Why_Right"]], axis=1)))
    return lstm, linear
