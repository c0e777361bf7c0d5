"""What every codec is: a versioned config dataclass that can encode a tensor into ordered
fragments and decode any allowed prefix of them, plus the registry that finds codecs by name.

A codec never touches files or entropy coders: it produces *payload bytes* per fragment and names
the entropy coding (see :mod:`holotensor.entropy`) and settings it wants for each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch

from holotensor.dtypes import DTypeInfo
from holotensor.errors import DecodeError, UnsupportedCodecError

__all__ = [
    "CodecConfig",
    "Encoded",
    "FragmentPayload",
    "StoredView",
    "TensorSpec",
    "available_codecs",
    "codec_from_dict",
    "get_codec",
    "register_codec",
    "tensor_bytes",
]


@dataclass(frozen=True)
class TensorSpec:
    """dtype and shape of the tensor a codec decodes to."""

    dtype: DTypeInfo
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize


@dataclass
class FragmentPayload:
    """The bytes of one fragment before entropy coding.

    Attributes:
        data: the payload (any buffer: bytes, memoryview, contiguous uint8 numpy array).
        coding: name of the entropy coding to store it with ("zstd", "raw", ...).
        coding_options: encoder settings for that coding (not stored; the coder records what a
            decoder needs).
        role: a short label saying what the fragment holds ("exponent", "scales", "rank 0-7").
    """

    data: Any
    coding: str = "zstd"
    coding_options: dict[str, Any] = field(default_factory=dict)
    role: str = ""


@dataclass(frozen=True)
class StoredView:
    """A fragment as stored: its checksum-verified bytes and how they are entropy-coded."""

    data: memoryview
    raw_size: int
    coding: str
    coding_params: Mapping[str, Any]


@dataclass
class Encoded:
    """A codec's output: ordered fragments plus the per-tensor side data a decoder needs."""

    fragments: list[FragmentPayload]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CodecConfig:
    """Base of all codec configs. Subclasses are frozen dataclasses registered by name.

    Class attributes a subclass sets:
        name: the registry name, stored in files.
        version: bumped when the payload layout changes; decoders reject newer versions.
        lossless: decode(encode(x)) == x bit for bit.
        progressive: every prefix of the fragments decodes to an approximation.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    lossless: ClassVar[bool] = False
    progressive: ClassVar[bool] = False

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able settings stored in the file header."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodecConfig:
        """Rebuild a config from its header form; unknown keys are a ``DecodeError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise DecodeError(f"codec {cls.name!r}: unknown config keys {sorted(unknown)}")
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as exc:
            raise DecodeError(f"codec {cls.name!r}: invalid config {dict(data)!r}: {exc}") from None

    def min_fragments(self, params: Mapping[str, Any], n_fragments: int) -> int:
        """Fewest leading fragments :meth:`decode` accepts (all of them unless progressive)."""
        return n_fragments

    def encode(self, tensor: torch.Tensor) -> Encoded:
        raise NotImplementedError

    def decode_stored(
        self,
        stored: Sequence[StoredView],
        params: Mapping[str, Any],
        spec: TensorSpec,
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor | None:
        """Optional fast path: decode every fragment straight from its stored (entropy-coded)
        bytes, e.g. merging each zstd frame while it is in cache. Return ``None`` to use the
        generic path (entropy-decode each fragment, then :meth:`decode`)."""
        return None

    def decode(
        self,
        payloads: Sequence[memoryview],
        params: Mapping[str, Any],
        spec: TensorSpec,
        *,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Decode the given leading fragments' payloads into a tensor of ``spec``.

        Raises:
            DecodeError: the payloads do not fit ``spec`` or ``params``.
        """
        raise NotImplementedError


def tensor_bytes(tensor: torch.Tensor) -> memoryview:
    """The raw little-endian bytes of a tensor (any dtype, layout or device) as a payload."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


_C = TypeVar("_C", bound=type[CodecConfig])
_REGISTRY: dict[str, type[CodecConfig]] = {}


def register_codec(name: str) -> Callable[[_C], _C]:
    """Class decorator: make a config class findable by ``name`` in files and policies."""

    def wrap(cls: _C) -> _C:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"codec name {name!r} is already registered to {_REGISTRY[name].__name__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def available_codecs() -> list[str]:
    """Names of the registered codecs."""
    return sorted(_REGISTRY)


def get_codec(name: str) -> type[CodecConfig]:
    """The config class registered as ``name``.

    Raises:
        UnsupportedCodecError: no such codec; the message lists the known ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnsupportedCodecError(
            f"unknown codec {name!r}; available: {', '.join(available_codecs())}"
        ) from None


def codec_from_dict(name: str, version: int, config: Mapping[str, Any]) -> CodecConfig:
    """Rebuild the config stored in a file header, checking the codec version."""
    cls = get_codec(name)
    if not isinstance(version, int) or version < 1 or version > cls.version:
        raise UnsupportedCodecError(
            f"codec {name!r} version {version!r} is not supported (this installation reads 1..{cls.version})"
        )
    return cls.from_dict(config)
