"""holotensor: PyTorch-native tensor compression.

The front door mirrors safetensors: :func:`save_file`, :func:`load_file`, :func:`safe_open`.
Names are resolved on first use, so ``import holotensor.format`` does not load every codec.
"""

from typing import Any

from holotensor.errors import HoloTensorError

__version__ = "0.1.0"

_API = ("Policy", "convert_to_hct", "convert_to_safetensors", "load_file", "safe_open", "save_file")

__all__ = ["HoloTensorError", "__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from holotensor import api

        return getattr(api, name)
    raise AttributeError(f"module 'holotensor' has no attribute {name!r}")
