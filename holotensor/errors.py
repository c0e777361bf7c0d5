"""The holotensor error family.

Every reader and decoder raises a subclass of :class:`HoloTensorError` for bad *data*;
caller mistakes stay ``ValueError``/``TypeError`` and a missing file stays ``FileNotFoundError``.
Messages name the file, tensor and fragment involved so a user can find the damage.
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "DecodeError",
    "FormatError",
    "HoloTensorError",
    "LimitError",
    "TruncatedError",
    "UnsupportedCodecError",
    "UnsupportedVersionError",
]


class HoloTensorError(Exception):
    """Root of every error holotensor raises for malformed or unsupported data.

    Args:
        message: what is wrong, ideally with expected vs found.
        file: the file being read or written, if any.
        tensor: the tensor name, if the problem belongs to one tensor.
        fragment: the fragment index within that tensor, if it belongs to one fragment.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        tensor: str | None = None,
        fragment: int | None = None,
    ) -> None:
        self.reason = message
        self.file = file
        self.tensor = tensor
        self.fragment = fragment
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file!r}")
        if self.tensor is not None:
            where.append(f"tensor {self.tensor!r}")
        if self.fragment is not None:
            where.append(f"fragment {self.fragment}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason

    def located(
        self, *, file: str | None = None, tensor: str | None = None, fragment: int | None = None
    ) -> HoloTensorError:
        """Return a copy of this error with missing location fields filled in.

        Lower layers (entropy, codecs) do not know which file they decode; the layer that
        does calls ``raise err.located(file=...) from err``.
        """
        return type(self)(
            self.reason,
            file=self.file if self.file is not None else file,
            tensor=self.tensor if self.tensor is not None else tensor,
            fragment=self.fragment if self.fragment is not None else fragment,
        )


class FormatError(HoloTensorError):
    """The bytes do not follow the file format (bad magic, bad header, inconsistent index)."""


class TruncatedError(FormatError):
    """The file or a payload ends before the data its header promises."""


class UnsupportedVersionError(FormatError):
    """The file declares a format version or a required feature this reader does not know."""


class LimitError(FormatError):
    """A size in the file exceeds a hard limit or what the file's length can justify."""


class ChecksumError(HoloTensorError):
    """Stored bytes do not match their recorded checksum."""


class DecodeError(HoloTensorError):
    """A payload passed its checksum but could not be decoded into the declared tensor."""


class UnsupportedCodecError(HoloTensorError):
    """The file names a codec or entropy coding this installation does not provide."""
