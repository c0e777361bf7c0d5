"""Which codec each tensor gets: glob patterns over tensor names, first match wins.

Small and sensitive tensors (1-D tensors, norms, biases) stay lossless unless a rule names them
explicitly, because a few kilobytes saved there cost far more quality than they are worth; integer
and bool tensors (token ids, masks) always do, since no lossy codec applies to them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from holotensor.codecs import CodecConfig, get_codec
from holotensor.codecs.lossless import LosslessConfig

__all__ = ["CodecSpec", "Policy", "resolve_codec"]

CodecSpec = str | CodecConfig
_SENSITIVE = re.compile(r"(^|[._])(norm|layernorm|layer_norm|ln_?\w*|bias)([._]|$)", re.IGNORECASE)


def resolve_codec(spec: CodecSpec) -> CodecConfig:
    """A codec config from a registry name ("lossless") or a config instance."""
    if isinstance(spec, CodecConfig):
        return spec
    if isinstance(spec, str):
        return get_codec(spec)()
    raise TypeError(f"a codec is a registered name or a CodecConfig, not {type(spec).__name__}")


@dataclass(frozen=True)
class Policy:
    """Map tensor names to codecs.

    Args:
        rules: ``{glob: codec}`` (or a sequence of pairs) tried in order; a codec is a registry
            name or a config.
        default: the codec for names no rule matches.
        keep_sensitive_lossless: 1-D tensors and norm/bias tensors use the lossless codec
            unless a rule gives their exact name.

    Example:
        >>> Policy(default="lossless").codec_for("encoder.bias", torch.zeros(3)).name
        'lossless'
    """

    rules: Mapping[str, CodecSpec] | Sequence[tuple[str, CodecSpec]] = field(default_factory=dict)
    default: CodecSpec = "lossless"
    keep_sensitive_lossless: bool = True

    def _pairs(self) -> list[tuple[str, CodecSpec]]:
        return list(self.rules.items()) if isinstance(self.rules, Mapping) else list(self.rules)

    def codec_for(self, name: str, tensor: torch.Tensor) -> CodecConfig:
        """The codec config for tensor ``name``: an exact-name rule, else lossless for integer
        and bool tensors and (if protected) sensitive ones, else the first matching glob, else
        the default."""
        pairs = self._pairs()
        for pattern, spec in pairs:
            if pattern == name:
                return resolve_codec(spec)
        if not (tensor.is_floating_point() or tensor.is_complex()):
            return LosslessConfig()  # integer and bool tensors (ids, masks, steps) have no lossy form
        if self.keep_sensitive_lossless and (tensor.dim() <= 1 or _SENSITIVE.search(name)):
            return LosslessConfig()
        for pattern, spec in pairs:
            if fnmatch.fnmatchcase(name, pattern):
                return resolve_codec(spec)
        return resolve_codec(self.default)

    @classmethod
    def of(cls, policy: Policy | Mapping[str, CodecSpec] | None, codec: CodecSpec | None) -> Policy:
        """Normalize the ``codec=``/``policy=`` arguments of the API into one policy."""
        if isinstance(policy, Policy):
            if codec is not None:
                raise ValueError("pass either a Policy or codec=, not both")
            return policy
        return cls(rules=policy or {}, default=codec if codec is not None else "lossless")
