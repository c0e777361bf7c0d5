"""Calibrated blockquant and codebooks for whole models and checkpoints: collect input statistics, choose codes.

The math is :mod:`holotensor.codecs.calibration`; this module connects it to models, files and
policies:

* :func:`collect_hessians` runs a model over calibration data (through a callable the caller
  writes, so holotensor needs to know nothing of tokenizers or model families) and returns each
  ``nn.Linear`` weight's input statistics ``H = X^T X / n``.
* :func:`save_hessians` / :func:`load_hessians` keep those statistics in an HCT V2 file, so that
  calibration data is run once and a checkpoint converter (``holotensor convert --calibrate``)
  can use them without the model's code.
* :func:`calibration_policy` gives a :class:`~holotensor.api.Policy` whose blockquant (or
  codebook) tensors are quantized by a calibration method while they stream through
  ``save_file``/``convert_to_hct``; the file holds plain "blockquant" (or "codebook") tensors.
  Codebooks are calibrated by GPTVQ (:mod:`holotensor.codecs.vq_calibration`) under the method
  name ``gptq``.
* :func:`calibrate_` quantizes a live model's linear layers in place and returns the codes.

On the command line the library still never runs a model itself::

    holotensor convert m.safetensors m.hct --codec blockquant:bits=4 --calibration-method hqq
    holotensor convert m.safetensors m.hct --codec blockquant:bits=4 --calibrate stats.hct
    holotensor convert m.safetensors m.hct --codec blockquant:bits=4 --calibrate samples.txt \
        --calibration-runner my_package.calibration:hessians
    holotensor convert m.safetensors m.hct --codec codebook:dim=4,bits=8 --calibrate stats.hct

The first is data-free. The second reads statistics some model code wrote with
:func:`save_hessians`. The third imports ``hessians(checkpoint_files, samples)`` (the model code),
which must return ``{weight name: X^T X / n}`` for the text's non-empty lines. Statistics come
from one pass of the original model, so every layer is calibrated against unquantized inputs;
GPTQ's sequential variant (statistics re-collected after each quantized layer) needs the model in
the loop and is not implemented.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from holotensor.api.files import load_file, safe_open, save_file
from holotensor.api.policy import CodecSpec, Policy
from holotensor.codecs import calibration as cal
from holotensor.codecs import quant_math as qm
from holotensor.codecs import vq_math as vm
from holotensor.codecs.base import CodecConfig
from holotensor.codecs.blockquant import BlockQuantConfig
from holotensor.codecs.codebook import CodebookConfig
from holotensor.errors import FormatError, HoloTensorError, LimitError

__all__ = [
    "CALIBRATION_METHODS",
    "HESSIAN_FILE_KIND",
    "CalibratedBlockQuant",
    "CalibratedCodebook",
    "calibrate_",
    "calibrate_tensor",
    "calibration_policy",
    "collect_hessians",
    "load_hessians",
    "quantized_policy",
    "read_calibration_text",
    "save_hessians",
]

CALIBRATION_METHODS = ("gptq", "awq", "hqq")
"""``gptq``: error feedback through ``H^-1`` (GPTVQ for codebooks); ``awq``: activation-aware
clipping search; ``hqq``: data-free (the weight alone). Codebooks take ``gptq`` only."""

QuantConfig = BlockQuantConfig | CodebookConfig
"""The configs whose codes calibration chooses."""
Codes = qm.QuantizedTensor | vm.CodebookTensor
"""Calibrated codes: blockquant's or the codebook codec's."""

HESSIAN_FILE_KIND = "holotensor.calibration.hessian.v1"
_KIND_KEY = "holotensor.kind"
MAX_CALIBRATION_TEXT_BYTES = 64 << 20


def _check_method(method: str) -> str:
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    return method


def _check_method_for(config: QuantConfig, method: str) -> None:
    _check_method(method)
    if isinstance(config, CodebookConfig) and method != "gptq":
        raise ValueError(f"codebook codes are calibrated by gptq (GPTVQ) only, not {method!r}")
    if not isinstance(config, (BlockQuantConfig, CodebookConfig)):
        raise TypeError(f"calibration chooses blockquant or codebook codes, not {type(config).__name__}")


def calibrate_tensor(
    weight: torch.Tensor,
    config: QuantConfig,
    method: str = "gptq",
    hessian: torch.Tensor | None = None,
) -> Codes:
    """Quantize one weight with ``config``'s settings, its codes chosen by ``method``.

    ``gptq`` and ``awq`` need the 2-D weight's input Hessian; ``hqq`` takes any weight of rank
    >= 1 (groups run along the last dimension, as everywhere in blockquant). A
    :class:`~holotensor.codecs.codebook.CodebookConfig` gives a
    :class:`~holotensor.codecs.vq_math.CodebookTensor` calibrated by GPTVQ (``gptq`` only).

    Raises:
        ValueError: an unknown method, a missing or mismatched Hessian, NaN/Inf weights.

    Example:
        >>> cfg = BlockQuantConfig(bits=4, group_size=64)
        >>> calibrate_tensor(torch.randn(8, 128), cfg, "hqq").shape
        (8, 128)
    """
    _check_method_for(config, method)
    if isinstance(config, CodebookConfig):
        if hessian is None:
            raise ValueError("codebook calibration needs the layer's input Hessian")
        return config.quantize(weight, hessian=hessian)
    settings = (config.bits, config.group_size, config.symmetric, config.scale_dtype)
    if method == "hqq":
        if weight.dim() == 0:
            raise ValueError("calibration needs a weight with at least one dimension")
        shape = tuple(weight.shape)
        qt = cal.hqq_quantize(weight.reshape(-1, shape[-1]), *settings)
        side = qm.scales_shape(shape, config.group_size)
        zeros = None if qt.zeros is None else qt.zeros.reshape(side)
        return qm.QuantizedTensor(qt.packed, qt.scales.reshape(side), zeros, shape, qt.bits, qt.group_size)
    if hessian is None:
        raise ValueError(f"calibration method {method!r} needs the layer's input Hessian")
    if method == "awq":
        return cal.activation_clip_quantize(weight, hessian, *settings)
    return cal.gptq_quantize(weight, hessian, *settings)


@dataclass(frozen=True)
class _PresetCodes:
    """Mixed into a quantizing codec config: its codes come from ``quantizer``, not from the codec.

    Only the codec config's own fields reach the file header, so the file holds plain tensors of
    that codec and readers need nothing new. ``quantizer`` maps the tensor to its codes (for a
    precomputed result, a function returning it).
    """

    quantizer: Callable[[torch.Tensor], Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()  # the codec config's own checks
        if not callable(self.quantizer):
            raise ValueError(f"{type(self).__name__} needs a quantizer callable")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "quantizer"}

    def quantize(self, tensor: torch.Tensor, **_settings: Any) -> Any:
        """The calibrated codes of ``tensor`` (the codec's own quantization settings do not apply)."""
        quantizer = self.quantizer
        if quantizer is None:  # only reachable by bypassing __post_init__
            raise ValueError(f"{type(self).__name__} needs a quantizer callable")
        return quantizer(tensor)


@dataclass(frozen=True)
class CalibratedBlockQuant(_PresetCodes, BlockQuantConfig):
    """A blockquant config whose codes (a :class:`~holotensor.codecs.quant_math.QuantizedTensor`)
    come from a calibration method; stored as plain "blockquant"."""


@dataclass(frozen=True)
class CalibratedCodebook(_PresetCodes, CodebookConfig):
    """A codebook config whose codes (a :class:`~holotensor.codecs.vq_math.CodebookTensor`) come
    from calibration; stored as plain "codebook"."""


def _calibrated(config: QuantConfig, quantizer: Callable[[torch.Tensor], Any]) -> CodecConfig:
    kind, base = (
        (CalibratedCodebook, CodebookConfig)
        if isinstance(config, CodebookConfig)
        else (CalibratedBlockQuant, BlockQuantConfig)
    )
    return kind(**{f.name: getattr(config, f.name) for f in dataclasses.fields(base)}, quantizer=quantizer)


def _lazy_quantizer(
    config: QuantConfig, method: str, hessian: torch.Tensor | None, name: str | None
) -> Callable[[torch.Tensor], Codes]:
    def run(tensor: torch.Tensor) -> Codes:
        try:
            return calibrate_tensor(tensor, config, method, hessian)
        except ValueError as exc:
            raise ValueError(str(exc) if name is None else f"tensor {name!r}: {exc}") from None

    return run


@dataclass(frozen=True)
class _DataFreePolicy(Policy):
    """A policy whose default codec is data-free calibration, told each tensor's name for its errors."""

    calibrated: BlockQuantConfig | None = None

    def codec_for(self, name: str, tensor: torch.Tensor) -> CodecConfig:
        codec = super().codec_for(name, tensor)
        if codec is self.default and self.calibrated is not None:
            return _calibrated(self.calibrated, _lazy_quantizer(self.calibrated, "hqq", None, name))
        return codec


def calibration_policy(
    config: QuantConfig,
    method: str = "gptq",
    hessians: Mapping[str, torch.Tensor] | None = None,
    *,
    default: CodecSpec = "lossless",
    keep_sensitive_lossless: bool = True,
) -> Policy:
    """A policy that quantizes with ``config`` and ``method`` while the tensors are written.

    With ``gptq``/``awq`` exactly the tensors named in ``hessians`` are calibrated and everything
    else gets ``default``; with ``hqq`` (data-free) every tensor that is not sensitive (1-D,
    norm, bias) is, unless ``hessians`` names a subset. A codebook ``config`` takes ``gptq``
    (GPTVQ) only.

    Example:
        >>> pol = calibration_policy(BlockQuantConfig(bits=4), "hqq")
        >>> save_file({"w": torch.randn(64, 256)}, "w.hct", policy=pol)  # doctest: +SKIP
    """
    _check_method_for(config, method)
    if method != "hqq" and not hessians:
        raise ValueError(f"calibration method {method!r} needs input Hessians (none given)")
    if method == "hqq" and not hessians:
        return _DataFreePolicy(
            default=_calibrated(config, _lazy_quantizer(config, method, None, None)),
            keep_sensitive_lossless=keep_sensitive_lossless,
            calibrated=config,
        )
    rules = {
        name: _calibrated(config, _lazy_quantizer(config, method, h, name))
        for name, h in (hessians or {}).items()
    }
    return Policy(rules=rules, default=default, keep_sensitive_lossless=keep_sensitive_lossless)


def quantized_policy(
    quantized: Mapping[str, Codes],
    config: QuantConfig | Mapping[str, QuantConfig],
    *,
    default: CodecSpec = "lossless",
) -> Policy:
    """A policy that stores precomputed codes (e.g. from :func:`calibrate_`, or a
    :class:`~holotensor.nn.CodebookLinear`'s ``decoder.to_codebook_tensor()``) under their names;
    ``config`` may differ per tensor (a mapping by name), for mixed precision."""

    def fixed(name: str, qt: Codes) -> Callable[[torch.Tensor], Codes]:
        def run(tensor: torch.Tensor) -> Codes:
            if tuple(tensor.shape) != qt.shape:
                raise ValueError(f"tensor {name!r} has shape {tuple(tensor.shape)}, its codes {qt.shape}")
            return qt

        return run

    def config_of(name: str) -> QuantConfig:
        return config if isinstance(config, (BlockQuantConfig, CodebookConfig)) else config[name]

    return Policy(
        rules={n: _calibrated(config_of(n), fixed(n, qt)) for n, qt in quantized.items()}, default=default
    )


def _linear_modules(model: nn.Module, filter_fn: Callable[[str, nn.Module], bool] | None):
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and (filter_fn is None or filter_fn(name, m))
    ]


def collect_hessians(
    model: nn.Module,
    run: Callable[[nn.Module], Any],
    *,
    filter_fn: Callable[[str, nn.Module], bool] | None = None,
) -> dict[str, torch.Tensor]:
    """``{"<module>.weight": X^T X / n}`` (float32) for every ``nn.Linear`` that ``run(model)`` reaches.

    ``run`` feeds the calibration data (e.g. ``lambda m: m.encode(sentences, batch_size=1)``);
    every input row a layer sees counts as one token, so pad positions should not be fed.

    Raises:
        ValueError: no linear layer was selected, or a selected layer saw no input.

    Example:
        >>> net = nn.Sequential(nn.Linear(8, 4))
        >>> collect_hessians(net, lambda m: m(torch.randn(5, 8)))["0.weight"].shape
        torch.Size([8, 8])
    """
    layers = _linear_modules(model, filter_fn)
    if not layers:
        raise ValueError("the model has no nn.Linear layers to calibrate (after filter_fn)")
    accs = {name: cal.HessianAccumulator(m.in_features) for name, m in layers}
    # Layers fed the same input (attention's query/key/value) share one accumulator.
    # The last input is held (not just its id), so "is" cannot match a recycled object.
    handles = []
    last: list[tuple[torch.Tensor, cal.HessianAccumulator]] = []

    def hook(name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def pre(_module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0]
            if last and last[0][0] is x and last[0][1].sum.shape[0] == x.shape[-1]:
                accs[name] = last[0][1]
                return
            accs[name].update(x)
            last[:] = [(x, accs[name])]

        return pre

    try:
        for name, m in layers:
            handles.append(m.register_forward_pre_hook(hook(name)))
        with torch.no_grad():
            run(model)
    finally:
        for h in handles:
            h.remove()
        last.clear()
    empty = [name for name, acc in accs.items() if acc.count == 0]
    if empty:
        raise ValueError(f"calibration run reached no input of {len(empty)} layer(s), e.g. {empty[:3]}")
    return {f"{name}.weight" if name else "weight": acc.hessian().float() for name, acc in accs.items()}


def read_calibration_text(path: str | os.PathLike[str]) -> list[str]:
    """The non-empty lines of a UTF-8 text file of calibration samples, one sample per line.

    Raises:
        FileNotFoundError: no such file.
        LimitError: the file is larger than 64 MiB (calibration needs a few hundred samples).
        FormatError: the file is not UTF-8 text (binary data, NUL bytes) or holds no text lines.
    """
    p = os.fspath(path)
    size = os.stat(p).st_size
    if size > MAX_CALIBRATION_TEXT_BYTES:
        raise LimitError(
            f"calibration text is {size:,} bytes, over the {MAX_CALIBRATION_TEXT_BYTES:,}-byte limit", file=p
        )
    with open(p, "rb") as f:
        raw = f.read(MAX_CALIBRATION_TEXT_BYTES + 1)
    if b"\x00" in raw:
        raise FormatError("calibration file holds NUL bytes: binary data, not text", file=p)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"calibration file is not UTF-8 text (byte {exc.start})", file=p) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise FormatError("calibration file holds no text lines", file=p)
    return lines


def save_hessians(hessians: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Write input Hessians to an HCT V2 file (lossless), marked as calibration statistics."""
    for name, h in hessians.items():
        if not isinstance(h, torch.Tensor) or h.dim() != 2 or h.shape[0] != h.shape[1]:
            raise ValueError(f"Hessian {name!r} must be a square 2-D tensor")
    policy = Policy(default="lossless", keep_sensitive_lossless=False)
    save_file({n: h.float().contiguous() for n, h in hessians.items()}, path, policy=policy,
              metadata={_KIND_KEY: HESSIAN_FILE_KIND})  # fmt: skip


def load_hessians(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a file written by :func:`save_hessians`.

    Raises:
        FileNotFoundError: no such file.
        FormatError: the file is not an HCT V2 file of calibration statistics, or an entry is
            not a square float matrix.
    """
    try:
        with safe_open(path) as f:
            kind = f.metadata().get(_KIND_KEY)
    except HoloTensorError as exc:
        raise FormatError(f"not a calibration statistics file: {exc.reason}", file=str(path)) from None
    if kind != HESSIAN_FILE_KIND:
        raise FormatError(
            f"an HCT V2 file but not calibration statistics ({_KIND_KEY}={kind!r}); "
            "write one with holotensor.api.calibrate.save_hessians",
            file=str(path),
        )
    hessians = load_file(path)
    for name, h in hessians.items():
        if not h.is_floating_point() or h.dim() != 2 or h.shape[0] != h.shape[1]:
            raise FormatError(
                f"Hessian has shape {tuple(h.shape)}, dtype {h.dtype}", file=str(path), tensor=name
            )
    return hessians


def calibrate_(
    model: nn.Module,
    config: QuantConfig,
    run: Callable[[nn.Module], Any] | None = None,
    *,
    method: str = "gptq",
    filter_fn: Callable[[str, nn.Module], bool] | None = None,
) -> dict[str, Codes]:
    """Quantize the model's ``nn.Linear`` weights in place with calibrated codes.

    Every selected layer's weight is replaced by its dequantized codes (so the model now computes
    what the stored file will), and the codes are returned, keyed by state-dict name, for
    ``save_file(model.state_dict(), path, policy=quantized_policy(codes, config))``. Statistics
    come from one run of the original model (all layers at once, not layer by layer).

    Args:
        run: feeds calibration data through the model; needed for ``gptq``/``awq``.
        method: one of :data:`CALIBRATION_METHODS`.
        filter_fn: ``(name, module) -> bool`` choosing the layers (default: every ``nn.Linear``).

    Example:
        >>> net = nn.Sequential(nn.Linear(64, 32))
        >>> codes = calibrate_(net, BlockQuantConfig(bits=4, group_size=32), lambda m: m(torch.randn(99, 64)))
        >>> sorted(codes)
        ['0.weight']
    """
    _check_method_for(config, method)
    if method != "hqq" and run is None:
        raise ValueError(f"calibration method {method!r} needs a run callable that feeds calibration data")
    hessians = collect_hessians(model, run, filter_fn=filter_fn) if run is not None else {}
    out: dict[str, Codes] = {}
    for name, module in _linear_modules(model, filter_fn):
        key = f"{name}.weight" if name else "weight"
        try:
            qt = calibrate_tensor(module.weight, config, method, hessians.get(key))
        except ValueError as exc:
            raise ValueError(f"tensor {key!r}: {exc}") from None
        with torch.no_grad():
            module.weight.copy_(qt.dequantize())
        out[key] = qt
    return out
