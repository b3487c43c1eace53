"""The model column layout and the batched per-block ops the PyTorch families train with."""
from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from generators.encoder import TabularEncoder
from generators.gan import _CondLinear, _Critic, _keep_mask
from generators.layout import _LAST_DIM_MIN, BlockLayout, ModelLayout
from generators.training import autocast, cpu_has_bf16, frozen, mixed_precision
from tests.tables import blocks as _blocks, real_table

# block sizes on both sides of the threshold where the ops switch memory layout
SIZES = [2, 2, 3, 7, _LAST_DIM_MIN - 1, _LAST_DIM_MIN + 5, _LAST_DIM_MIN + 5]


def test_model_layout_round_trip_on_a_real_table() -> None:
    df, schema = real_table("weather", rows=400)
    encoder = TabularEncoder().fit(df, schema)
    matrix = torch.from_numpy(encoder.transform(df))
    layout = ModelLayout(encoder.spans, encoder.width)
    model = layout.to_model(matrix)
    assert torch.equal(layout.from_model(model), matrix)
    numeric, onehot = layout.split(model)
    assert numeric.shape[1] == sum(s.width for s in encoder.spans if s.kind == "numeric")
    # every categorical block of the model order is an exact one-hot
    for block in _blocks(onehot, layout.blocks.sizes):
        assert torch.all(block.sum(1) == 1)
    assert layout.blocks.sizes == sorted(layout.blocks.sizes)


def test_per_block_ops_match_the_per_column_reference() -> None:
    torch.manual_seed(0)
    layout = BlockLayout(SIZES)
    logits = torch.randn(64, layout.width) * 3
    ref_log = torch.cat([F.log_softmax(b, dim=1) for b in _blocks(logits, SIZES)], 1)
    torch.testing.assert_close(layout.log_softmax(logits), ref_log)
    torch.testing.assert_close(layout.softmax(logits), ref_log.exp())
    idx = torch.stack([torch.randint(k, (64,)) for k in SIZES], 1)
    onehot = torch.cat([F.one_hot(idx[:, b], k).float() for b, k in enumerate(SIZES)], 1)
    expected = sum(F.cross_entropy(b, idx[:, i], reduction="sum") for i, b in enumerate(_blocks(logits, SIZES)))
    torch.testing.assert_close(layout.cross_entropy(logits, onehot), expected)
    assert torch.equal(layout.indices(onehot) - layout.offsets, idx)


def test_one_hot_draws_follow_the_softmax() -> None:
    layout = BlockLayout([2, _LAST_DIM_MIN + 2])
    logits = torch.zeros(20_000, layout.width)
    logits[:, 1] = torch.log(torch.tensor(3.0))  # block 0: p = (0.25, 0.75)
    logits[:, 2 + 5] = torch.log(torch.tensor(float(_LAST_DIM_MIN + 1)))  # block 1: half the mass on slot 5
    torch.manual_seed(1)
    draws = layout.sample_onehot(logits)
    blocks = _blocks(draws, layout.sizes)
    assert all(torch.all(b.sum(1) == 1) for b in blocks)
    assert abs(blocks[0][:, 1].mean().item() - 0.75) < 0.02
    assert abs(blocks[1][:, 5].mean().item() - 0.5) < 0.02


def test_hard_gumbel_softmax_is_one_hot_with_a_gradient() -> None:
    layout = BlockLayout(SIZES)
    logits = torch.randn(32, layout.width, requires_grad=True)
    out = layout.gumbel_softmax(logits, tau=0.2, hard=True)
    assert all(torch.all(b.sum(1) == 1) and torch.all((b == 0) | (b == 1)) for b in _blocks(out.detach(), SIZES))
    (out * torch.randn_like(out)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("k", [1, 4])
def test_condition_lookup_equals_a_linear_layer_over_one_hots(k: int) -> None:
    torch.manual_seed(0)
    dense_in, cond_dim, out = 6, 5, 3
    layer = _CondLinear(dense_in, cond_dim, k, out)
    x = torch.randn(10, dense_in)
    slots = torch.randint(cond_dim, (10, k))
    onehots = F.one_hot(slots, cond_dim).float().reshape(10, k * cond_dim)
    reference = nn.Linear(dense_in + k * cond_dim, out)
    with torch.no_grad():
        reference.weight.copy_(torch.cat([layer.dense.weight, layer.cond.weight.T], 1))
        reference.bias.copy_(layer.dense.bias)
    torch.testing.assert_close(layer(x, slots), reference(torch.cat([x, onehots], 1)))
    # the dense path (interpolated conditions in the gradient penalty) is the same product
    torch.testing.assert_close(layer(x, None, onehots), reference(torch.cat([x, onehots], 1)))


def test_dropout_mask_keeps_the_expected_share_and_scales() -> None:
    torch.manual_seed(0)
    mask = _keep_mask(torch.ones(200, 100), 0.5)
    assert abs((mask > 0).float().mean().item() - 0.5) < 0.02 and set(mask.unique().tolist()) == {0.0, 2.0}


@pytest.mark.parametrize("dims", [[16, 8], [16], []])
def test_critic_input_gradient_is_autograds(dims: list[int]) -> None:
    """The gradient penalty's written-out input gradient equals autograd's, and so do the weight
    gradients of the penalty (double backward there, first order here)."""
    torch.manual_seed(0)
    critic = _Critic(width=5, cond_dim=4, dims=dims, pac=3).eval()  # eval: no dropout masks to match
    x, cond = torch.randn(12, 5), torch.rand(12, 4)
    xg, cg = x.clone().requires_grad_(True), cond.clone().requires_grad_(True)
    gx, gc = torch.autograd.grad(critic(xg, None, cg).sum(), [xg, cg], create_graph=True)
    reference = (gx.reshape(4, -1).pow(2).sum(1) + gc.reshape(4, -1).pow(2).sum(1)).sqrt()
    ours = critic.input_gradient_norms(x, cond)
    torch.testing.assert_close(ours, reference)
    params = [p for p in critic.parameters() if p.requires_grad]
    want = torch.autograd.grad(((reference - 1) ** 2).mean(), params, allow_unused=True)
    got = torch.autograd.grad(((ours - 1) ** 2).mean(), params, allow_unused=True)
    for w, g in zip(want, got):
        if w is None or g is None:  # biases have no gradient in an input gradient
            assert (w is None or w.abs().max() == 0) and (g is None or g.abs().max() == 0)
        else:
            torch.testing.assert_close(g, w)


def test_frozen_restores_gradients() -> None:
    net = nn.Linear(3, 2)
    with frozen(net):
        assert not any(p.requires_grad for p in net.parameters())
    assert all(p.requires_grad for p in net.parameters())


def test_precision_choice(monkeypatch) -> None:
    cpu = torch.device("cpu")
    assert mixed_precision(cpu, "fp32") == torch.float32
    assert mixed_precision(cpu, "bf16") == torch.bfloat16
    assert mixed_precision(cpu, "auto") == (torch.bfloat16 if cpu_has_bf16() else torch.float32)
    monkeypatch.setattr("generators.training.cpu_has_bf16", lambda: False)
    assert mixed_precision(cpu, "auto") == torch.float32
    # CUDA: bf16 only where the GPU has bf16 units (torch emulates it on a V100 or T4, slower)
    cuda = torch.device("cuda")
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda including_emulation=True: True)
    assert mixed_precision(cuda, "auto") == torch.bfloat16
    monkeypatch.setattr("torch.cuda.is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert mixed_precision(cuda, "auto") == torch.float32 and mixed_precision(cuda, "bf16") == torch.bfloat16
    assert isinstance(autocast(cuda), contextlib.nullcontext)  # the default of the LLM and diffusion
