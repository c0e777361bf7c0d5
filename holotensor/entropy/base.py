"""The entropy-coding interface: bytes in, stored bytes out, and back.

A coder is found by its id (stored per fragment in the file). ``encode`` returns the stored
bytes plus the parameters a decoder needs (for zstd: the compressed size of every independent
frame and the raw frame size), which the container keeps in the fragment's index entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from holotensor.errors import UnsupportedCodecError

__all__ = ["EntropyCoder", "available_codings", "get_coder", "register_coder"]


class EntropyCoder(ABC):
    """Turns payload bytes into stored bytes and back; stateless, thread-safe."""

    id: ClassVar[str] = ""

    @abstractmethod
    def encode(self, data: memoryview, options: Mapping[str, Any]) -> tuple[bytes | bytearray, dict[str, Any]]:
        """Return (stored bytes, decoder parameters to persist)."""

    def encode_parts(self, data: memoryview, options: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """As :meth:`encode`, with the stored bytes as a list of buffers to be stored back to
        back; coders that produce pieces (zstd frames) override it to skip a joining copy."""
        stored, params = self.encode(data, options)
        return [stored], params

    @abstractmethod
    def check(self, params: Mapping[str, Any], stored_size: int, raw_size: int) -> None:
        """Validate persisted parameters against the stored and raw sizes *before* any
        allocation; raise ``FormatError``/``LimitError`` (without location) if they disagree."""

    @abstractmethod
    def decode(self, stored: memoryview, params: Mapping[str, Any], raw_size: int) -> bytearray:
        """Return exactly ``raw_size`` decoded bytes or raise ``DecodeError``."""


_T = TypeVar("_T", bound=type[EntropyCoder])
_CODERS: dict[str, EntropyCoder] = {}


def register_coder(coding_id: str) -> Callable[[_T], _T]:
    """Class decorator registering a coder under the id stored in files."""

    def wrap(cls: _T) -> _T:
        cls.id = coding_id
        _CODERS[coding_id] = cls()
        return cls

    return wrap


def available_codings() -> list[str]:
    """Ids of the registered entropy codings."""
    return sorted(_CODERS)


def get_coder(coding_id: str) -> EntropyCoder:
    """The coder for ``coding_id``; ``UnsupportedCodecError`` listing the known ids otherwise."""
    try:
        return _CODERS[coding_id]
    except KeyError:
        raise UnsupportedCodecError(
            f"unknown entropy coding {coding_id!r}; available: {', '.join(available_codings())}"
        ) from None
