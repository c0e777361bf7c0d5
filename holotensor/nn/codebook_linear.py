"""Linear layers whose weight is a residual-codebook decode: codes fixed, codebooks and scales trainable.

A :class:`CodebookDecoder` holds the integer codes as a buffer and the codebooks (and per-row scales)
as parameters; its forward decodes the dense weight with :func:`holotensor.codecs.vq_math.reconstruct`
(a differentiable gather), or with the Triton kernel on a GPU when no gradient is needed.
:class:`CodebookLinear` wraps one with a bias::

    codes (M, out, G) --gather C_m, sum over m, * scale--> W (out, in) --F.linear--> y

Fine-tuning the codebooks with the codes fixed (AQLM's "codebook update" phase; Egiazarian et al.
2024) recovers much of the error of the initial k-means fit, either layer by layer against
calibration activations (:meth:`CodebookLinear.fit_calibration`) or end to end with any loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from holotensor.codecs import vq_calibration
from holotensor.codecs import vq_math as vm
from holotensor.codecs.base import Encoded, TensorSpec
from holotensor.codecs.codebook import CodebookConfig, triton_decoder
from holotensor.dtypes import from_torch
from holotensor.nn.compress import register_compress_handler

__all__ = ["CodebookDecoder", "CodebookLinear"]


class CodebookDecoder(nn.Module):
    """codes -> dense weights, with trainable float32 codebooks ``(M, k, d)`` and scales ``(N,)``.

    Args:
        ct: a fitted :class:`~holotensor.codecs.vq_math.CodebookTensor` (codes, codebooks, scales,
            shape, bits) to start from.

    Example:
        >>> ct = vm.quantize(torch.randn(32, 64), dim=4, bits=6)
        >>> CodebookDecoder(ct)().shape
        torch.Size([32, 64])
    """

    codes: torch.Tensor

    def __init__(self, ct: vm.CodebookTensor) -> None:
        super().__init__()
        self.shape = tuple(ct.shape)
        self.bits = ct.bits
        self.register_buffer("codes", ct.codes.to(torch.int32).clone())
        self.codebooks = nn.Parameter(ct.codebooks.detach().float().clone())
        self.scales = None if ct.scales is None else nn.Parameter(ct.scales.detach().float().clone())

    @property
    def stages(self) -> int:
        return self.codebooks.shape[0]

    def forward(self, stages: int | None = None) -> torch.Tensor:
        """The float32 dense tensor of the first ``stages`` stages (all by default)."""
        trainable = torch.is_grad_enabled() and (
            self.codebooks.requires_grad or (self.scales is not None and self.scales.requires_grad)
        )
        if self.codes.is_cuda and not trainable and stages in (None, self.stages):
            launcher = triton_decoder()
            if launcher is not None:
                _, k = vm.row_view(self.shape)
                return launcher(self.codes, self.codebooks, self.scales, cols=k).reshape(self.shape)
        return vm.reconstruct(self.codes, self.codebooks, self.scales, self.shape, stages=stages)

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer groups (:func:`~holotensor.codecs.vq_calibration.param_groups`): scales get ``lr``
        times their mean magnitude, so one step moves codebooks and scales by similar fractions."""
        return vq_calibration.param_groups(self.codebooks, self.scales, lr)

    def to_codebook_tensor(self) -> vm.CodebookTensor:
        """The current state with codebooks and scales rounded to fp16, as the codec stores them.

        Raises:
            ValueError: a codebook entry or scale overflows fp16.
        """
        return vm.CodebookTensor.rounded(self.codes.long(), self.codebooks, self.scales, self.shape, self.bits)

    def extra_repr(self) -> str:
        m, k, d = self.codebooks.shape
        return f"shape={list(self.shape)}, stages={m}, entries={k}, dim={d}, scales={self.scales is not None}"


class CodebookLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` decoded from residual codebooks on every forward.

    Build it with :meth:`from_linear`; train ``decoder.codebooks`` / ``decoder.scales`` (and the
    bias) with any optimizer while the codes stay fixed; export with :meth:`encode` or
    :meth:`to_linear`.

    Example:
        >>> lin = nn.Linear(64, 32)
        >>> layer = CodebookLinear.from_linear(lin, CodebookConfig(dim=4, bits=6, codebooks=2))
        >>> layer(torch.randn(5, 64)).shape
        torch.Size([5, 32])
    """

    def __init__(self, decoder: CodebookDecoder, bias: torch.Tensor | None, config: CodebookConfig) -> None:
        super().__init__()
        if len(decoder.shape) != 2:
            raise ValueError(f"a CodebookLinear needs a 2-D weight, got shape {decoder.shape}")
        self.out_features, self.in_features = decoder.shape
        self.config = config
        self.decoder = decoder
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone())

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        config: CodebookConfig,
        calibration: torch.Tensor | None = None,
        *,
        hessian: torch.Tensor | None = None,
        steps: int = 20,
        lr: float = 1e-2,
    ) -> CodebookLinear:
        """Quantize ``linear.weight`` with ``config``, calibrated when inputs or their statistics are given.

        Args:
            linear: the layer to replace (any float dtype).
            config: the codebook settings.
            calibration: optional inputs of the layer, ``(..., in_features)``; stands for their
                Hessian ``X^T X``.
            hessian: optional ``X^T X`` (or ``X^T X / n``) of the layer's inputs,
                ``(in_features, in_features)``, e.g. from
                :func:`holotensor.api.calibrate.collect_hessians`. With it (or ``calibration``)
                codes are chosen by GPTVQ error feedback and codebooks and scales fitted to the
                layer's outputs for ``steps`` Adam steps at ``lr``
                (:func:`holotensor.codecs.vq_calibration.gptvq_quantize`); without, plain k-means.

        Raises:
            ValueError: a weight with NaN/Inf, both ``calibration`` and ``hessian``, or calibration
                of the wrong width or non-finite.
        """
        weight = linear.weight.detach()
        if calibration is not None and hessian is not None:
            raise ValueError("give calibration inputs or their hessian, not both")
        if calibration is not None:
            x = cls._calibration_rows(calibration, weight.shape[1]).double()
            hessian = x.T @ x
        ct = config.quantize(weight, hessian=hessian, steps=steps, lr=lr)
        return cls(CodebookDecoder(ct), linear.bias, config).to(weight.device)

    @staticmethod
    def _calibration_rows(calibration: torch.Tensor, in_features: int) -> torch.Tensor:
        if (
            not isinstance(calibration, torch.Tensor)
            or not calibration.is_floating_point()
            or calibration.dim() < 1
            or calibration.shape[-1] != in_features
            or calibration.numel() == 0
        ):
            raise ValueError(f"calibration must be a non-empty float tensor (..., {in_features})")
        x = calibration.detach().float().reshape(-1, in_features)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("calibration holds NaN or Inf")
        return x

    def fit_calibration(
        self,
        weight: torch.Tensor,
        calibration: torch.Tensor | None = None,
        *,
        hessian: torch.Tensor | None = None,
        steps: int = 100,
        lr: float = 1e-2,
    ) -> list[float]:
        """Fine-tune codebooks and scales (codes fixed) so ``x W_hat^T`` matches ``x W^T`` on calibration inputs.

        Minimizes the relative output error ``tr(D H D^T) / tr(W H W^T)``, ``D = W - W_hat``, with
        Adam (:func:`holotensor.codecs.vq_calibration.fit_codebooks`), for inputs ``calibration``
        ``(..., in_features)`` or their ``hessian`` ``X^T X``.

        Returns:
            The loss before each step and after the last (``steps + 1`` values).

        Raises:
            ValueError: ``weight``, ``calibration`` or ``hessian`` of the wrong shape, both or
                neither of ``calibration`` and ``hessian``, or non-finite values.
        """
        if tuple(weight.shape) != (self.out_features, self.in_features):
            raise ValueError(
                f"weight must be {(self.out_features, self.in_features)}, got {tuple(weight.shape)}"
            )
        if (calibration is None) == (hessian is None):
            raise ValueError("give calibration inputs or their hessian (exactly one)")
        if calibration is not None:
            x = self._calibration_rows(calibration, self.in_features).double()
            hessian = x.T @ x
        dec = self.decoder
        return vq_calibration.fit_codebooks(
            dec.codebooks, dec.scales, dec.codes, weight, hessian, steps=steps, lr=lr
        )

    @property
    def weight(self) -> torch.Tensor:
        """The decoded dense weight (float32; differentiable in codebooks and scales)."""
        return self.decoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.decoder()
        bias = self.bias
        if x.dtype != w.dtype:
            w = w.to(x.dtype)
            bias = None if bias is None else bias.to(x.dtype)
        return F.linear(x, w, bias)

    def spec(self) -> TensorSpec:
        """The weight's tensor spec as the codec stores it (float32)."""
        return TensorSpec(from_torch(torch.float32), (self.out_features, self.in_features))

    def bits_per_weight(self) -> float:
        """Stored bits per weight of the weight, codebooks and scales included (bias not counted)."""
        return self.config.bits_per_weight(self.spec(), {"entries": self.decoder.codebooks.shape[1]})

    def encode(self) -> Encoded:
        """The weight's codec fragments (codebooks and scales rounded to fp16)."""
        return self.config.encode_quantized(self.decoder.to_codebook_tensor())

    def to_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the weight exactly as stored (fp16-rounded codebooks and scales)."""
        w = self.decoder.to_codebook_tensor().dequantize()
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device=w.device)
        with torch.no_grad():
            lin.weight.copy_(w)
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"codec={self.config.describe()!r}, bits_per_weight={self.bits_per_weight():.3f}"
        )


@register_compress_handler(CodebookConfig, accepts=(nn.Linear,), produces=CodebookLinear)
def _codebook_linear(module: nn.Module, config: CodebookConfig) -> nn.Module:
    if not isinstance(module, nn.Linear) or not isinstance(config, CodebookConfig):
        raise TypeError(f"codebook compresses nn.Linear with a CodebookConfig, got {type(module).__name__}")
    return CodebookLinear.from_linear(module, config)
