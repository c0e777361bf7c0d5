"""MPSLinear: dense equivalence, training, autograd, torch.compile, state_dict, bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from holotensor.analysis.metrics import rel_l2
from holotensor.codecs.tt_contract import TTLinearPlan, plan_tt_linear, tt_matrix_linear
from holotensor.nn.mps_linear import MPSLinear

F64 = torch.float64


def _layer(**kw: object) -> MPSLinear:
    torch.manual_seed(0)
    return MPSLinear(24, 30, (2, 3, 4), (5, 3, 2), ranks=(5, 6), dtype=F64, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("batch_shape", [(1,), (8,), (2, 4), (64,), (2, 256)])
def test_forward_equals_to_linear(batch_shape: tuple[int, ...]) -> None:
    layer = _layer()
    x = torch.randn(*batch_shape, 24, dtype=F64)
    lin = layer.to_linear()
    assert isinstance(lin, nn.Linear) and lin.weight.shape == (30, 24)
    torch.testing.assert_close(layer(x), lin(x), rtol=1e-10, atol=1e-10)


def test_forward_covers_every_plan_kind() -> None:
    shapes = [tuple(c.shape) for c in _layer().cores]
    # So the parametrized test above runs the sweep, a partly merged sweep and the dense weight.
    assert plan_tt_linear(shapes, 1).groups == ((0, 1), (1, 2), (2, 3))
    assert plan_tt_linear(shapes, 8).groups == ((0, 1), (1, 3))
    assert plan_tt_linear(shapes, 64).dense


def test_no_bias() -> None:
    layer = _layer(bias=False)
    assert layer.bias is None
    x = torch.randn(4, 24, dtype=F64)
    torch.testing.assert_close(layer(x), x @ layer.dense_weight().T, rtol=1e-10, atol=1e-10)
    assert layer.to_linear().bias is None


def test_from_linear_round_trip() -> None:
    torch.manual_seed(1)
    lin = nn.Linear(64, 48, dtype=F64)
    full = MPSLinear.from_linear(lin, in_factors=(4, 4, 4), out_factors=(4, 4, 3))
    assert full.rel_error < 1e-12
    x = torch.randn(9, 64, dtype=F64)
    torch.testing.assert_close(full(x), lin(x), rtol=1e-10, atol=1e-10)
    low = MPSLinear.from_linear(lin, max_rank=4)
    assert low.ranks == (1, 4, 4, 1)
    assert low.rel_error == pytest.approx(rel_l2(lin.weight, low.dense_weight()), rel=1e-10)
    by_tol = MPSLinear.from_linear(lin, tol=0.5, factorization="balanced")
    assert rel_l2(lin.weight, by_tol.dense_weight()) <= 0.5
    assert by_tol.n_params < sum(p.numel() for p in lin.parameters())


def test_init_variance_matches_linear() -> None:
    torch.manual_seed(2)
    layer = MPSLinear(384, 1536, ranks=8)
    w = layer.dense_weight().detach()
    target = 1.0 / (3.0 * 384)
    assert 0.5 * target < w.var().item() < 2.0 * target


def test_gradcheck() -> None:
    torch.manual_seed(3)
    layer = MPSLinear(6, 4, (2, 3), (2, 2), ranks=2, dtype=F64)
    x = torch.randn(3, 6, dtype=F64, requires_grad=True)
    params = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    names = [n for n, _ in layer.named_parameters()]

    def f(x: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, dict(zip(names, ps, strict=True)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


@pytest.mark.parametrize(
    "plan",
    [
        TTLinearPlan(((0, 1), (1, 2), (2, 3)), False, 0),
        TTLinearPlan(((0, 1), (1, 2), (2, 3)), True, 0),
        TTLinearPlan(((0, 2), (2, 3)), True, 0),
        TTLinearPlan(((0, 3),), False, 0),
    ],
)
def test_gradcheck_every_plan_kind(plan: TTLinearPlan) -> None:
    torch.manual_seed(5)
    layer = MPSLinear(12, 8, (2, 3, 2), (2, 2, 2), ranks=2, dtype=F64)
    x = torch.randn(2, 12, dtype=F64, requires_grad=True)
    cores = [c.detach().clone().requires_grad_(True) for c in layer.cores]
    bias = layer.bias.detach().clone().requires_grad_(True)  # type: ignore[union-attr]

    def f(x: torch.Tensor, b: torch.Tensor, *cs: torch.Tensor) -> torch.Tensor:
        return tt_matrix_linear(x, cs, b, plan=plan)

    assert torch.autograd.gradcheck(f, (x, bias, *cores))


def test_training_reduces_loss() -> None:
    torch.manual_seed(4)
    teacher = nn.Linear(24, 30)
    student = MPSLinear(24, 30, (2, 3, 4), (5, 3, 2), ranks=4)
    opt = torch.optim.SGD(student.parameters(), lr=0.05)
    x = torch.randn(64, 24)
    y = teacher(x).detach()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.mse_loss(student(x), y)
        loss.backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_state_dict_round_trip() -> None:
    a = _layer()
    b = MPSLinear(24, 30, (2, 3, 4), (5, 3, 2), ranks=(5, 6), dtype=F64)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 24, dtype=F64)
    assert torch.equal(a(x), b(x))
    assert set(a.state_dict()) == {"cores.0", "cores.1", "cores.2", "bias"}
    c = MPSLinear(24, 30, (2, 3, 4), (5, 3, 2), ranks=(2, 4), dtype=F64)
    with pytest.raises(RuntimeError, match="size mismatch"):
        c.load_state_dict(a.state_dict())


def test_compile_aot_eager() -> None:
    torch._dynamo.reset()
    fast = MPSLinear(24, 60, ranks=3, order=2, dtype=F64)  # the fast split sweeps first to last
    assert plan_tt_linear([tuple(c.shape) for c in fast.cores], 64).reverse
    for layer in (_layer(), fast):
        compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
        for batch in (1, 64):  # _layer: the last-to-first sweep and the dense plan
            x = torch.randn(batch, 24, dtype=F64, requires_grad=True)
            out = compiled(x)
            torch.testing.assert_close(out, layer(x), rtol=1e-10, atol=1e-10)
            out.sum().backward()
            assert x.grad is not None and layer.cores[0].grad is not None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method`:DeprecationWarning")  # raised inside torch
def test_compile_inductor() -> None:
    torch._dynamo.reset()
    layer = MPSLinear(24, 30, (2, 3, 4), (5, 3, 2), ranks=(3, 4))
    compiled = torch.compile(layer, backend="inductor")
    x = torch.randn(8, 24)
    torch.testing.assert_close(compiled(x), layer(x), rtol=1e-4, atol=1e-5)


def test_extra_repr() -> None:
    text = repr(MPSLinear(384, 1536, ranks=8, factorization="balanced"))
    assert "in_factors=(6, 8, 8)" in text and "out_factors=(8, 12, 16)" in text
    assert "ranks=(1, 8, 8, 1)" in text
    assert "fewer than dense" in text


def test_default_factorization_is_the_fast_one() -> None:
    fast = MPSLinear(384, 1536, ranks=8, order=2)
    assert (fast.in_factors, fast.out_factors) == ((192, 2), (2, 768))
    balanced = MPSLinear(384, 1536, ranks=8, order=2, factorization="balanced")
    assert (balanced.in_factors, balanced.out_factors) == ((16, 24), (32, 48))
    # Far fewer flops at about the same parameters: the point of the default (see tt_matrix_factors).

    def sweep_flops(layer: MPSLinear) -> int:
        return plan_tt_linear([tuple(c.shape) for c in layer.cores], 64).flops

    assert 4 * sweep_flops(fast) < sweep_flops(balanced)

    kept = MPSLinear(384, 1536, in_factors=(16, 24), ranks=8)  # a given side is kept, the other chosen
    assert (kept.in_factors, kept.out_factors) == ((16, 24), (768, 2))
    x = torch.randn(5, 384)
    torch.testing.assert_close(fast(x), fast.to_linear()(x), rtol=1e-4, atol=1e-5)


def test_from_linear_fast_factors() -> None:
    torch.manual_seed(6)
    lin = nn.Linear(64, 48, dtype=F64)
    fast = MPSLinear.from_linear(lin, max_rank=4, order=2)
    assert (fast.in_factors, fast.out_factors) == ((2, 32), (24, 2))
    assert fast.rel_error == pytest.approx(rel_l2(lin.weight, fast.dense_weight()), rel=1e-10)
    x = torch.randn(3, 64, dtype=F64)
    torch.testing.assert_close(fast(x), x @ fast.dense_weight().T + lin.bias, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_features": 0, "out_features": 4}, "in_features"),
        ({"in_features": 6, "out_features": 4, "in_factors": (2, 2), "out_factors": (2, 2)}, "in_factors"),
        ({"in_features": 6, "out_features": 4, "in_factors": (2, 3), "out_factors": (4,)}, "out_factors"),
        ({"in_features": 13, "out_features": 16}, "prime"),
        ({"in_features": 8, "out_features": 8, "ranks": 0}, ">= 1"),
        ({"in_features": 8, "out_features": 8, "in_factors": (2, 4), "ranks": (2, 2)}, "bond ranks"),
        ({"in_features": 8, "out_features": 8, "factorization": "skewed"}, "factorization"),
        ({"in_features": 8, "out_features": 8, "batch": 0}, "batch"),
        ({"in_features": 4, "out_features": 8, "order": 3}, "no 3 factors"),
    ],
)
def test_bad_construction(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MPSLinear(**kwargs)  # type: ignore[arg-type]


def test_bad_forward_and_from_linear() -> None:
    layer = _layer()
    with pytest.raises(ValueError, match="expects 24 input features"):
        layer(torch.randn(2, 23, dtype=F64))
    with pytest.raises(ValueError, match=r"nn\.Linear"):
        MPSLinear.from_linear(nn.Conv1d(2, 2, 1))  # type: ignore[arg-type]
