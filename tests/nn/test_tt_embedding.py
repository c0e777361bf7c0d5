"""TTEmbedding: lookups from cores equal the dense table, compression of nn.Embedding, training."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from holotensor.analysis.metrics import rel_l2
from holotensor.nn.tt_embedding import TTEmbedding

F64 = torch.float64


def test_lookup_equals_dense_table() -> None:
    torch.manual_seed(0)
    emb = TTEmbedding(100, 24, (4, 5, 5), (2, 3, 4), ranks=(3, 5), dtype=F64)
    table = emb.dense_table()
    assert table.shape == (100, 24)
    idx = torch.tensor([[0, 99, 42, 42], [7, 8, 1, 63]])
    out = emb(idx)
    assert out.shape == (2, 4, 24)
    torch.testing.assert_close(out, table[idx], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(emb.to_embedding()(idx), out, rtol=1e-12, atol=1e-12)


def test_padded_rows_are_not_addressable() -> None:
    emb = TTEmbedding(97, 16, ranks=4)  # 97 is prime: the cores hold more rows
    assert math.prod(emb.row_factors) > 97
    assert emb.dense_table().shape == (97, 16)
    with pytest.raises(IndexError, match="index 97 is out of range"):
        emb(torch.tensor([3, 97]))
    with pytest.raises(IndexError, match="index -1"):
        emb(torch.tensor([-1]))
    with pytest.raises(ValueError, match="integer tensor"):
        emb(torch.tensor([1.0]))


def test_from_embedding() -> None:
    torch.manual_seed(1)
    dense = nn.Embedding(1000, 64, dtype=F64)
    exact = TTEmbedding.from_embedding(dense)
    assert exact.rel_error < 1e-12
    idx = torch.randint(0, 1000, (50,))
    torch.testing.assert_close(exact(idx), dense(idx), rtol=1e-10, atol=1e-10)
    low = TTEmbedding.from_embedding(dense, max_rank=8)
    assert low.ranks == (1, 8, 8, 1)
    assert low.n_params < 1000 * 64 / 5
    assert low.rel_error == pytest.approx(rel_l2(dense.weight, low.dense_table()), rel=1e-8)
    back = low.to_embedding()
    assert isinstance(back, nn.Embedding) and back.weight.shape == (1000, 64)


def test_init_has_unit_variance() -> None:
    torch.manual_seed(2)
    emb = TTEmbedding(4096, 64, ranks=8)
    assert 0.5 < emb.dense_table().detach().var().item() < 2.0


def test_training_reduces_loss_and_state_dict() -> None:
    torch.manual_seed(3)
    target = torch.randn(60, 12)
    emb = TTEmbedding(60, 12, (3, 4, 5), (2, 2, 3), ranks=4)
    opt = torch.optim.Adam(emb.parameters(), lr=0.05)
    idx = torch.arange(60)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss = nn.functional.mse_loss(emb(idx), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    copy = TTEmbedding(60, 12, (3, 4, 5), (2, 2, 3), ranks=4)
    copy.load_state_dict(emb.state_dict())
    assert torch.equal(copy(idx), emb(idx))


def test_compile_aot_eager() -> None:
    torch._dynamo.reset()
    emb = TTEmbedding(60, 12, (3, 4, 5), (2, 2, 3), ranks=4)
    idx = torch.tensor([[1, 5, 59]])
    compiled = torch.compile(emb, backend="aot_eager")
    torch.testing.assert_close(compiled(idx), emb(idx))


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((0, 8), {}, "num_embeddings"),
        ((10, 8), {"row_factors": (2, 4), "dim_factors": (2, 4)}, "< 10 rows"),
        ((10, 8), {"row_factors": (2, 5), "dim_factors": (2, 2)}, "dim_factors"),
        ((10, 8), {"row_factors": (0, 5)}, "row_factors"),
        ((10, 13), {"row_factors": (2, 5)}, "prime"),
        ((10, 8), {"row_factors": (2, 5), "ranks": 0}, ">= 1"),
    ],
)
def test_bad_construction(args: tuple[int, int], kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TTEmbedding(*args, **kwargs)  # type: ignore[arg-type]


def test_from_embedding_rejects_other_modules() -> None:
    with pytest.raises(ValueError, match="needs an nn"):
        TTEmbedding.from_embedding(nn.Linear(2, 2))  # type: ignore[arg-type]
