"""``compress_(model, policy)``: swap layers for compressed ones in place, by module name.

The policy maps module-name patterns to codec configs (``None`` = leave alone). Patterns are
``fnmatch`` globs (``"encoder.*.attn.*"``) or, with a ``"re:"`` prefix, regular expressions that
must match the whole name; the first matching pattern wins. What a config does to a module is
decided by a handler registered for the config's type, so other layer kinds (tensor-train,
codebook) plug in with :func:`register_compress_handler` without touching ``compress_``.

Only the exact module types a handler accepts are swapped (for blockquant: ``nn.Linear``, not its
subclasses, whose forward may bypass the weight, as ``nn.MultiheadAttention.out_proj`` does), so
embeddings, norms and biases are left alone; every leaf that a pattern selected but that is not swapped is
logged by name with the reason.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from holotensor.codecs.base import CodecConfig
from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.nn.quantized_linear import QuantLinear

__all__ = ["CompressPolicy", "compress_", "register_compress_handler"]

logger = logging.getLogger(__name__)

CompressPolicy = Mapping[str, CodecConfig | None]
_Handler = Callable[[nn.Module, CodecConfig], nn.Module]


@dataclass(frozen=True)
class _Entry:
    accepts: tuple[type[nn.Module], ...]
    produces: type[nn.Module]
    build: _Handler


_HANDLERS: dict[type[CodecConfig], _Entry] = {}


def register_compress_handler(
    config_type: type[CodecConfig], accepts: tuple[type[nn.Module], ...], produces: type[nn.Module]
) -> Callable[[_Handler], _Handler]:
    """Decorator: ``build(module, config) -> new module`` for modules of exactly the ``accepts`` types.

    ``produces`` is the compressed module type; modules already of that type are not re-wrapped.
    """

    def wrap(build: _Handler) -> _Handler:
        _HANDLERS[config_type] = _Entry(tuple(accepts), produces, build)
        return build

    return wrap


@register_compress_handler(BlockQuantConfig, accepts=(nn.Linear,), produces=QuantLinear)
def _blockquant_linear(module: nn.Module, config: CodecConfig) -> nn.Module:
    if not isinstance(module, nn.Linear) or not isinstance(config, BlockQuantConfig):
        raise TypeError(
            f"blockquant compresses nn.Linear with a BlockQuantConfig, got {type(module).__name__}"
        )
    return QuantLinear.from_linear(module, config)


def _matcher(pattern: str) -> Callable[[str], bool]:
    if pattern.startswith("re:"):
        rx = re.compile(pattern[3:])
        return lambda name: rx.fullmatch(name) is not None
    return lambda name: fnmatch.fnmatchcase(name, pattern)


def _normalize(
    policy: CompressPolicy | CodecConfig,
) -> list[tuple[str, Callable[[str], bool], CodecConfig | None]]:
    if isinstance(policy, CodecConfig):
        policy = {"*": policy}
    if not isinstance(policy, Mapping):
        raise TypeError(f"policy must map name patterns to codec configs, got {type(policy).__name__}")
    rules = []
    for pattern, config in policy.items():
        if not isinstance(pattern, str):
            raise TypeError(f"policy patterns must be strings, got {pattern!r}")
        if config is not None and type(config) not in _HANDLERS:
            known = ", ".join(sorted(c.__name__ for c in _HANDLERS))
            raise TypeError(
                f"no compress_ handler for {type(config).__name__} (pattern {pattern!r}); known: {known}"
            )
        try:
            rules.append((pattern, _matcher(pattern), config))
        except re.error as exc:
            raise ValueError(f"bad regular expression in policy pattern {pattern!r}: {exc}") from None
    return rules


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def compress_(
    model: nn.Module,
    policy: CompressPolicy | CodecConfig,
    filter_fn: Callable[[nn.Module, str], bool] | None = None,
) -> list[str]:
    """Replace the layers of ``model`` selected by ``policy`` with compressed layers, in place.

    Args:
        model: any module; its root is never replaced.
        policy: ``{pattern: config or None}`` (first match wins), or one config for every layer.
        filter_fn: optional ``(module, name) -> bool``; a ``False`` skips that layer.

    Returns:
        The names of the replaced modules, in model order.

    Raises:
        TypeError: a policy entry whose config type has no handler.
        ValueError: a malformed ``re:`` pattern.

    Example:
        >>> mlp = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8))
        >>> compress_(mlp, {"0": BlockQuantConfig(bits=4, group_size=32), "*": None})
        ['0']
    """
    rules = _normalize(policy)
    produced = tuple(entry.produces for entry in _HANDLERS.values())
    replaced = []
    inside_replaced: list[str] = []
    for name, module in list(model.named_modules()):
        if not name or any(name.startswith(p + ".") for p in inside_replaced):
            continue
        leaf = next(module.children(), None) is None
        hit = next(((pat, cfg) for pat, match, cfg in rules if match(name)), None)
        if hit is None:
            continue
        pattern, config = hit
        if config is None:
            if leaf or isinstance(module, produced):
                logger.info(
                    "compress_: leaving %s (%s) alone: policy pattern %r says None",
                    name,
                    type(module).__name__,
                    pattern,
                )
            continue
        entry = _HANDLERS[type(config)]
        if isinstance(module, produced):
            logger.info("compress_: skipping %s: already a %s", name, type(module).__name__)
            inside_replaced.append(name)
            continue
        if type(module) not in entry.accepts:
            if leaf:
                logger.info(
                    "compress_: leaving %s (%s) alone: %s applies to %s only",
                    name,
                    type(module).__name__,
                    type(config).__name__,
                    "/".join(t.__name__ for t in entry.accepts),
                )
            continue
        if filter_fn is not None and not filter_fn(module, name):
            logger.info("compress_: skipping %s (%s): rejected by filter_fn", name, type(module).__name__)
            continue
        _set_submodule(model, name, entry.build(module, config))
        replaced.append(name)
        inside_replaced.append(name)
    return replaced
