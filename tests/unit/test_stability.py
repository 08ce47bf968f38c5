"""Tests for tutorial_code.stability: the schedule against PyTorch's own schedulers, clipping
against torch.nn.utils.clip_grad_norm_, and one test behind each pitfall of chapter 2."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.stability import (
    CLIP_EPS,
    clip_grad_norm_,
    global_grad_norm,
    grad_norms,
    largest_gradient,
    warmup_cosine_lr,
    warmup_cosine_scheduler,
)
from tutorial_code.training import lm_loss, train, train_step

SMALL = GPTConfig(vocab_size=20, context_length=8, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)

# (peak_lr, warmup_steps, total_steps, initial_lr, min_lr)
SETTINGS = [
    (1e-3, 10, 100, 1e-5, 1e-5),
    (0.01, 27, 135, 1e-4, 1e-5),  # a common textbook setting: 20% warmup of 135 steps
    (3e-4, 1, 50, 3e-6, 0.0),
    (0.1, 30, 300, 1e-3, 0.01),
    (6e-4, 2000, 20000, 6e-6, 6e-5),  # a long run, 10% warmup, decay to 10% of the peak
    (1.0, 7, 8, 0.5, 1.0),  # min_lr == peak_lr: warmup, then constant
]


def schedule(t: int, s: tuple) -> float:
    peak, w, n, init, mn = s
    return warmup_cosine_lr(
        t, peak_lr=peak, warmup_steps=w, total_steps=n, initial_lr=init, min_lr=mn
    )


def lrs_of(scheduler_factory, peak: float, steps: int) -> list[float]:
    """The lr each of ``steps`` optimizer updates uses, stepping the scheduler after each."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=peak)
    scheduler = scheduler_factory(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        param.grad = torch.zeros(1)
        optimizer.step()
        scheduler.step()
    return lrs


def small_model(seed: int = 0) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(SMALL)


def batch(seed: int = 0, b: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, SMALL.vocab_size, (b, SMALL.context_length + 1), generator=g)
    return ids[:, :-1], ids[:, 1:]


# --------------------------------------------------------------------------------------
# The schedule
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", SETTINGS)
def test_schedule_equals_pytorch_sequential_linear_then_cosine(s: tuple) -> None:
    """Step by step, t = 0..total_steps, against SequentialLR(LinearLR, CosineAnnealingLR)."""
    peak, w, n, init, mn = s

    def pytorch(optimizer):
        return SequentialLR(
            optimizer,
            [
                LinearLR(optimizer, start_factor=init / peak, end_factor=1.0, total_iters=w),
                CosineAnnealingLR(optimizer, T_max=n - w, eta_min=mn),
            ],
            milestones=[w],
        )

    reference = lrs_of(pytorch, peak, n + 1)
    ours = [schedule(t, s) for t in range(n + 1)]
    assert max(abs(a - b) for a, b in zip(ours, reference, strict=True)) < 1e-9


@pytest.mark.parametrize("s", [(1e-3, 0, 100, 0.0, 1e-5), (0.5, 0, 3, 0.0, 0.0)])
def test_no_warmup_equals_cosine_annealing_lr(s: tuple) -> None:
    peak, _, n, _, mn = s
    reference = lrs_of(lambda o: CosineAnnealingLR(o, T_max=n, eta_min=mn), peak, n + 1)
    assert max(abs(schedule(t, s) - r) for t, r in enumerate(reference)) < 1e-9


def test_warmup_from_zero_by_hand() -> None:
    """LinearLR cannot start at 0 (start_factor > 0); check the values derived by hand."""
    kw = dict(peak_lr=0.8, warmup_steps=4, total_steps=12, initial_lr=0.0, min_lr=0.0)
    assert [warmup_cosine_lr(t, **kw) for t in range(5)] == [0.0, 0.2, 0.4, 0.6000000000000001, 0.8]
    # halfway through the 8 decay steps cos(pi/2) = 0: the rate is (peak + min) / 2
    assert warmup_cosine_lr(8, **kw) == pytest.approx(0.4, abs=1e-15)


def test_warmup_from_zero_makes_no_update_at_step_0_but_adam_counts_it() -> None:
    """Reference: Adam's algorithm by hand (Kingma & Ba, 2015, algorithm 1) and AdamW's
    decoupled decay p <- p (1 - lr wd). With initial_lr = 0 update 0 has rate 0: the weights
    stay put (decay is multiplied by the rate too) but m_1 = (1 - beta1) g_0 and the step count
    advance, so update 1 is not Adam's first update."""
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([weight], lr=0.1, weight_decay=0.1, betas=(0.9, 0.999))
    scheduler = warmup_cosine_scheduler(optimizer, peak_lr=0.1, warmup_steps=4, total_steps=10)
    g0, g1 = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([-1.0, 1.0, 0.5])
    weight.grad = g0.clone()
    optimizer.step()
    scheduler.step()
    assert torch.equal(weight.detach(), torch.ones(3))
    state = optimizer.state[weight]
    assert int(state["step"]) == 1
    torch.testing.assert_close(state["exp_avg"], 0.1 * g0)
    # update 1 at lr 0.025: Adam with both gradients in its moments, not a fresh sign(g1) step
    lr = optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(0.025, rel=1e-12)
    weight.grad = g1.clone()
    optimizer.step()
    m = (0.9 * 0.1 * g0 + 0.1 * g1) / (1 - 0.9**2)
    v = (0.999 * 0.001 * g0**2 + 0.001 * g1**2) / (1 - 0.999**2)
    expected = torch.ones(3) * (1 - lr * 0.1) - lr * m / (v.sqrt() + 1e-8)
    torch.testing.assert_close(weight.detach(), expected, rtol=1e-6, atol=1e-7)
    fresh = torch.ones(3) * (1 - lr * 0.1) - lr * torch.sign(g1)  # what a first update would be
    assert not torch.allclose(weight.detach(), fresh, atol=1e-3)


@pytest.mark.parametrize("s", SETTINGS)
def test_where_warmup_ends_and_what_happens_after_total_steps(s: tuple) -> None:
    peak, w, n, init, mn = s
    assert schedule(0, s) == (init if w > 0 else peak)
    assert schedule(w, s) == peak  # the peak is the rate of update number warmup_steps
    if w > 0:
        assert schedule(w - 1, s) < peak
    assert schedule(n, s) == pytest.approx(mn, abs=1e-15)
    assert schedule(n - 1, s) >= mn  # the last update still uses a rate at or above min_lr
    for t in (n + 1, n + 7, 10 * n):  # convention: constant at min_lr after the run
        assert schedule(t, s) == mn


def test_pytorch_cosine_annealing_rises_again_after_t_max_but_ours_stays_at_min_lr() -> None:
    s = (1e-3, 10, 100, 1e-5, 1e-5)
    reference = lrs_of(lambda o: CosineAnnealingLR(o, T_max=90, eta_min=1e-5), 1e-3, 130)
    # PyTorch's cosine is periodic: 30 steps past T_max it has risen well above eta_min
    assert reference[120] > 1e-5 + 1e-5
    assert schedule(130, s) == 1e-5


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(1, 400),
    warm_frac=st.floats(0.0, 0.999),
    peak=st.floats(1e-6, 10.0),
    init_frac=st.floats(0.0, 1.0),
    min_frac=st.floats(0.0, 1.0),
)
def test_schedule_shape_and_lambda_lr_agree(total, warm_frac, peak, init_frac, min_frac) -> None:
    w = int(warm_frac * total)
    kw = dict(
        peak_lr=peak,
        warmup_steps=w,
        total_steps=total,
        initial_lr=init_frac * peak,
        min_lr=min_frac * peak,
    )
    lrs = [warmup_cosine_lr(t, **kw) for t in range(total + 3)]
    tol = 1e-12 * peak
    assert all(b >= a - tol for a, b in zip(lrs[: w + 1], lrs[1 : w + 1]))  # rises during warmup
    assert all(b <= a + tol for a, b in zip(lrs[w:], lrs[w + 1 :]))  # then never rises
    assert all(min(kw["initial_lr"], kw["min_lr"]) - tol <= x <= peak + tol for x in lrs)
    via_scheduler = lrs_of(lambda o: warmup_cosine_scheduler(o, **kw), peak, total + 3)
    assert max(abs(a - b) for a, b in zip(lrs, via_scheduler)) <= 1e-12 * peak


@pytest.mark.parametrize("s", SETTINGS)
def test_sum_over_the_decay_is_mean_of_peak_and_min(s: tuple) -> None:
    """sum_{k=0}^{M-1} cos(pi k / M) = 1 (terms k and M - k cancel), so the M decay updates
    sum to M (peak + min) / 2 + (peak - min) / 2: on average the decay runs at the midpoint."""
    peak, w, n, init, mn = s
    m = n - w
    total = math.fsum(schedule(t, s) for t in range(w, n))
    assert total == pytest.approx(m * (peak + mn) / 2 + (peak - mn) / 2, rel=1e-12)


def test_scheduler_with_several_param_groups() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3))
    groups = [{"params": [a], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=0.01)
    kw = dict(peak_lr=0.01, warmup_steps=3, total_steps=10, initial_lr=0.001, min_lr=0.001)
    scheduler = warmup_cosine_scheduler(optimizer, **kw)
    for t in range(12):
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(warmup_cosine_lr(t, **kw), rel=1e-12)
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(warmup_steps=100, total_steps=100), "warmup_steps must be in"),
        (dict(warmup_steps=200, total_steps=100), "warmup must end before training"),
        (dict(warmup_steps=-1), "warmup_steps must be in"),
        (dict(total_steps=0, warmup_steps=0), "total_steps must be >= 1"),
        (dict(peak_lr=-0.1), "peak_lr must be a finite number >= 0"),
        (dict(peak_lr=0.0, initial_lr=0.0, min_lr=0.0), "peak_lr must be > 0"),
        (dict(initial_lr=-1e-5), "initial_lr must be a finite number >= 0"),
        (dict(min_lr=-1e-5), "min_lr must be a finite number >= 0"),
        (dict(min_lr=0.2), r"min_lr \(0.2\) must be <= peak_lr \(0.1\)"),
        (dict(initial_lr=0.2), r"initial_lr \(0.2\) must be <= peak_lr"),
        (dict(peak_lr=float("nan")), "peak_lr must be a finite number"),
        (dict(min_lr=float("inf")), "min_lr must be a finite number"),
    ],
)
def test_bad_schedules_raise_value_error(kw: dict, match: str) -> None:
    args = dict(peak_lr=0.1, warmup_steps=10, total_steps=100, initial_lr=0.0, min_lr=0.0) | kw
    with pytest.raises(ValueError, match=match):
        warmup_cosine_lr(0, **args)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match=match):
        warmup_cosine_scheduler(optimizer, **args)


def test_bad_step_and_types_raise() -> None:
    kw = dict(peak_lr=0.1, warmup_steps=10, total_steps=100)
    with pytest.raises(ValueError, match="step must be >= 0"):
        warmup_cosine_lr(-1, **kw)
    with pytest.raises(TypeError, match="step must be an int"):
        warmup_cosine_lr(1.5, **kw)
    with pytest.raises(TypeError, match="warmup_steps must be an int"):
        warmup_cosine_lr(0, peak_lr=0.1, warmup_steps=0.1, total_steps=100)
    with pytest.raises(TypeError, match="peak_lr must be a float"):
        warmup_cosine_lr(0, peak_lr="0.1", warmup_steps=1, total_steps=100)
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        warmup_cosine_scheduler([torch.zeros(1)], **kw)


def test_scheduler_requires_the_optimizer_lr_to_be_the_peak() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    with pytest.raises(ValueError, match=r"param group 0 has lr=0.01 but peak_lr=0.1"):
        warmup_cosine_scheduler(optimizer, peak_lr=0.1, warmup_steps=1, total_steps=10)


# --------------------------------------------------------------------------------------
# Clipping against torch.nn.utils.clip_grad_norm_
# --------------------------------------------------------------------------------------

SHAPES = [
    [(5,)],
    [(3, 4), (4,), (2, 3, 5)],
    [(64, 64), (64,), (1,), (7, 1, 3)],
    [(1000,), (10, 100)],
]


def make_params(shapes, seed: int, scale: float, none_every: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    params = []
    for i, shape in enumerate(shapes):
        p = torch.nn.Parameter(torch.randn(shape, generator=g))
        if not (none_every and i % none_every == 0):
            p.grad = scale * torch.randn(shape, generator=g)
        params.append(p)
    return params


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("max_norm", [1e-3, 0.5, 1.0, 5.0, 1e6])
@pytest.mark.parametrize("norm_type", [2.0, float("inf"), 1.0])
@pytest.mark.parametrize("none_every", [0, 2])
def test_clipping_equals_torch(shapes, max_norm, norm_type, none_every) -> None:
    ours = make_params(shapes, seed=len(shapes), scale=0.3, none_every=none_every)
    theirs = make_params(shapes, seed=len(shapes), scale=0.3, none_every=none_every)
    n_ours = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    n_theirs = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert abs(n_ours.item() - n_theirs.item()) <= 1e-6 * max(1.0, n_theirs.item())
    for a, b in zip(ours, theirs, strict=True):
        assert (a.grad is None) == (b.grad is None)
        if a.grad is not None:
            torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-6)


def test_no_clipping_below_max_norm_leaves_gradients_bit_identical() -> None:
    params = make_params(SHAPES[1], seed=0, scale=0.01)
    before = [p.grad.clone() for p in params]
    norm = clip_grad_norm_(params, max_norm=1e6)
    assert norm.item() < 1e6
    assert all(torch.equal(p.grad, b) for p, b in zip(params, before))


def test_clipped_norm_is_max_norm_up_to_eps_and_direction_is_kept() -> None:
    params = make_params(SHAPES[2], seed=1, scale=1.0)
    before = torch.cat([p.grad.flatten() for p in params])
    n = clip_grad_norm_(params, max_norm=0.5).item()
    after = torch.cat([p.grad.flatten() for p in params])
    assert n == pytest.approx(before.norm().item(), rel=1e-6)
    assert after.norm().item() == pytest.approx(0.5 * n / (n + CLIP_EPS), rel=1e-6)
    cosine = torch.nn.functional.cosine_similarity(before, after, dim=0).item()
    assert cosine == pytest.approx(1.0, abs=1e-6)


def test_per_parameter_clipping_changes_the_direction_global_does_not() -> None:
    params = make_params([(10,), (10,)], seed=2, scale=1.0)
    params[1].grad *= 10  # one tensor has much larger gradients than the other
    before = torch.cat([p.grad.flatten() for p in params])
    for p in params:  # per-parameter: each tensor clipped on its own
        clip_grad_norm_([p], max_norm=1.0)
    after = torch.cat([p.grad.flatten() for p in params])
    assert torch.nn.functional.cosine_similarity(before, after, dim=0).item() < 0.9


def test_global_norm_is_the_norm_of_all_gradients_concatenated() -> None:
    params = make_params(SHAPES[2], seed=3, scale=0.7, none_every=3)
    flat = torch.cat([p.grad.flatten() for p in params if p.grad is not None])
    assert global_grad_norm(params).item() == pytest.approx(flat.norm().item(), rel=1e-6)
    assert global_grad_norm(params, norm_type=float("inf")).item() == flat.abs().max().item()
    l1 = global_grad_norm(params, norm_type=1.0).item()
    assert l1 == pytest.approx(flat.abs().sum().item(), rel=1e-6)


def test_clipping_accepts_a_generator_and_a_single_tensor() -> None:
    """model.parameters() is a generator: it must be read once, not once per loop."""
    model, theirs = small_model(), small_model()
    x, y = batch()
    for m in (model, theirs):
        lm_loss(m, x, y).backward()
    n = clip_grad_norm_(model.parameters(), max_norm=0.1)
    torch.nn.utils.clip_grad_norm_(theirs.parameters(), max_norm=0.1)
    assert n.item() > 0.1
    for a, b in zip(model.parameters(), theirs.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-6)
    single = torch.nn.Parameter(torch.ones(4))
    single.grad = torch.full((4,), 3.0)  # norm 6
    assert clip_grad_norm_(single, 3.0).item() == 6.0
    torch.testing.assert_close(single.grad, torch.full((4,), 1.5), rtol=1e-6, atol=0)


def test_no_gradients_gives_zero_norm() -> None:
    params = [torch.nn.Parameter(torch.ones(3))]
    assert clip_grad_norm_(params, 1.0).item() == 0.0
    assert torch.nn.utils.clip_grad_norm_(params, 1.0).item() == 0.0


def test_non_finite_norm() -> None:
    ours = make_params(SHAPES[1], seed=4, scale=1.0)
    theirs = make_params(SHAPES[1], seed=4, scale=1.0)
    ours[0].grad[0, 0] = theirs[0].grad[0, 0] = float("inf")
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    assert math.isinf(clip_grad_norm_(ours, 1.0).item())
    torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad, b.grad, equal_nan=True)


@pytest.mark.parametrize(
    ("kw", "error", "match"),
    [
        (dict(max_norm=0.0), ValueError, "max_norm must be > 0"),
        (dict(max_norm=-1.0), ValueError, "max_norm must be > 0"),
        (dict(max_norm=float("nan")), ValueError, "max_norm must be > 0"),
        (dict(max_norm="1"), TypeError, "max_norm must be a float"),
        (dict(max_norm=1.0, norm_type=0.0), ValueError, "norm_type must be > 0"),
        (dict(max_norm=1.0, norm_type="fro"), TypeError, "norm_type must be a float"),
    ],
)
def test_bad_clipping_arguments(kw: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        clip_grad_norm_(make_params(SHAPES[0], seed=0, scale=1.0), **kw)


def test_bad_parameters_argument() -> None:
    with pytest.raises(TypeError, match="parameters must be a tensor or an iterable of tensors"):
        clip_grad_norm_(3.0, 1.0)
    with pytest.raises(TypeError, match="parameters must contain only tensors"):
        clip_grad_norm_([torch.zeros(1), "w"], 1.0)


# --------------------------------------------------------------------------------------
# Per-parameter report
# --------------------------------------------------------------------------------------


def test_grad_norms_per_parameter_and_their_global_combination() -> None:
    model = small_model()
    x, y = batch()
    lm_loss(model, x, y).backward()
    model.pos_emb.weight.grad = None  # a parameter without a gradient is left out
    norms = grad_norms(model)
    named = dict(model.named_parameters())
    assert "pos_emb.weight" not in norms and len(norms) == len(named) - 1
    for name, value in norms.items():
        assert value == pytest.approx(named[name].grad.norm().item(), rel=1e-6)
    total = math.sqrt(sum(v * v for v in norms.values()))
    assert total == pytest.approx(global_grad_norm(model.parameters()).item(), rel=1e-5)


def test_largest_gradient_compares_magnitudes_not_signed_values() -> None:
    """A naive search takes max(g), which misses a large negative entry."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.01)
    model[0].weight.grad[1, 0] = 0.1
    model[1].weight.grad[0, 1] = -0.5
    assert largest_gradient(model) == ("1.weight", -0.5)
    seeds_answer = max(p.grad.max().item() for p in model.parameters())
    assert abs(largest_gradient(model)[1]) > abs(seeds_answer)  # max(g) missed -0.5


def test_clip_grad_norm_takes_norm_type_positionally_like_torch() -> None:
    grads = [torch.linspace(-3.0, 2.0, 6).reshape(2, 3), torch.tensor([4.0, -1.0])]
    ours = [torch.zeros_like(g, requires_grad=True) for g in grads]
    theirs = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for a, b, g in zip(ours, theirs, grads):
        a.grad, b.grad = g.clone(), g.clone()
    norm = clip_grad_norm_(ours, 1.0, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0, 1.0)
    assert torch.allclose(norm, expected)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a.grad, b.grad, atol=1e-6)


def test_largest_gradient_matches_concatenation_on_a_gpt() -> None:
    model = small_model()
    x, y = batch()
    lm_loss(model, x, y).backward()
    name, value = largest_gradient(model)
    flat = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert abs(value) == flat.abs().max().item()
    assert dict(model.named_parameters())[name].grad.abs().max().item() == abs(value)


def test_report_errors() -> None:
    with pytest.raises(ValueError, match="call loss.backward"):
        largest_gradient(small_model())
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        grad_norms([torch.zeros(1)])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        largest_gradient([torch.zeros(1)])


# --------------------------------------------------------------------------------------
# The training step, and the pitfalls of chapter 2
# --------------------------------------------------------------------------------------


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_train_step_uses_lr_t_for_update_t_and_reports_norms() -> None:
    model = small_model()
    kw = dict(peak_lr=0.05, warmup_steps=3, total_steps=8, initial_lr=0.005, min_lr=0.005)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler = warmup_cosine_scheduler(optimizer, **kw)
    for t in range(8):
        x, y = batch(seed=t)
        before = flat_params(model)
        stats = train_step(model, optimizer, x, y, scheduler=scheduler, max_norm=0.2)
        assert stats.lr == pytest.approx(warmup_cosine_lr(t, **kw), rel=1e-12)
        step = (flat_params(model) - before).norm().item()
        # plain SGD: the step is lr(t) times the clipped gradient
        assert step == pytest.approx(stats.lr * stats.clipped_grad_norm, rel=1e-4)
        assert stats.clipped_grad_norm == pytest.approx(min(stats.grad_norm, 0.2), rel=1e-4)


def test_pitfall_clip_after_backward_and_before_step() -> None:
    """Clipping before backward() or after optimizer.step() does not limit the update."""
    max_norm, lr = 1e-3, 1.0
    x, y = batch()

    def update(order: str) -> float:
        model = small_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        before = flat_params(model)
        loss = lm_loss(model, x, y)
        optimizer.zero_grad()
        if order == "clip, backward, step":
            clip_grad_norm_(model.parameters(), max_norm)  # nothing to clip yet
        loss.backward()
        if order == "backward, clip, step":
            clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        if order == "backward, step, clip":
            clip_grad_norm_(model.parameters(), max_norm)  # too late: the update is done
        return (flat_params(model) - before).norm().item()

    right = update("backward, clip, step")
    assert right == pytest.approx(lr * max_norm, rel=1e-3)
    assert update("clip, backward, step") > 100 * right
    assert update("backward, step, clip") > 100 * right


def test_pitfall_with_sgd_warmup_and_clipping_multiply() -> None:
    """With plain SGD the step length is lr(t) * min(||g||, max_norm): during warmup the
    clip threshold and the small rate limit the same update twice."""
    model = small_model()
    kw = dict(peak_lr=0.5, warmup_steps=5, total_steps=10, initial_lr=0.05)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = warmup_cosine_scheduler(optimizer, **kw)
    lengths, bounds = [], []
    for t in range(10):
        before = flat_params(model)
        stats = train_step(model, optimizer, *batch(seed=t), scheduler=scheduler, max_norm=0.05)
        assert stats.grad_norm > 0.05  # clipped at every step, warmup included
        lengths.append((flat_params(model) - before).norm().item())
        bounds.append(warmup_cosine_lr(t, **kw) * 0.05)
    assert lengths == pytest.approx(bounds, rel=1e-3)


def test_pitfall_adam_update_size_does_not_follow_clipping() -> None:
    """With Adam the first update is lr * g / (|g| + eps) ~ lr * sign(g) whatever the
    gradient's scale, so clipping does not bound it; it changes how much a large gradient
    weighs in Adam's moment estimates relative to the others."""
    x, y = batch()
    deltas = []
    for max_norm in (None, 1e-2):
        model = small_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        before = flat_params(model)
        stats = train_step(model, optimizer, x, y, max_norm=max_norm)
        deltas.append(flat_params(model) - before)
    assert stats.grad_norm > 10 * 1e-2  # the clip scaled the gradient down more than 10x
    clipped = torch.cat([p.grad.flatten() for p in model.parameters()])
    # where the clipped gradient is far above Adam's eps = 1e-8, both updates are lr * sign(g)
    big = clipped.abs() > 1e-6
    assert big.float().mean() > 0.9
    torch.testing.assert_close(deltas[1][big], deltas[0][big], rtol=1e-2, atol=0)
    lr_everywhere = torch.full_like(deltas[0][big], 1e-3)
    torch.testing.assert_close(deltas[0][big].abs(), lr_everywhere, rtol=1e-2, atol=0)


def test_pitfall_stepping_the_scheduler_per_epoch_stretches_the_schedule() -> None:
    """total_steps counts optimizer updates; one scheduler.step() per epoch leaves the run
    in warmup (here: 4 epochs of 25 batches with 10 warmup steps)."""
    kw = dict(peak_lr=0.1, warmup_steps=10, total_steps=100, initial_lr=0.001, min_lr=0.001)
    epochs, batches = 4, 25
    per_step, per_epoch = [], []
    for per in ("step", "epoch"):
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([param], lr=0.1)
        scheduler = warmup_cosine_scheduler(optimizer, **kw)
        lrs = per_step if per == "step" else per_epoch
        for _ in range(epochs):
            for _ in range(batches):
                lrs.append(optimizer.param_groups[0]["lr"])
                param.grad = torch.zeros(1)
                optimizer.step()
                if per == "step":
                    scheduler.step()
            if per == "epoch":
                scheduler.step()
    assert per_step == pytest.approx([warmup_cosine_lr(t, **kw) for t in range(100)], rel=1e-12)
    assert max(per_epoch) < 0.5 * kw["peak_lr"]  # never left warmup: the peak was never used
    assert per_epoch[-1] == pytest.approx(warmup_cosine_lr(3, **kw), rel=1e-12)


def test_pitfall_scheduler_step_before_optimizer_step_skips_lr0() -> None:
    """LambdaLR applies lr(0) at construction; stepping it first makes update t use lr(t+1)."""
    kw = dict(peak_lr=0.1, warmup_steps=4, total_steps=10, initial_lr=0.0)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = warmup_cosine_scheduler(optimizer, **kw)
    assert optimizer.param_groups[0]["lr"] == 0.0  # lr(0), set by the constructor
    used = []
    with pytest.warns(UserWarning, match=r"lr_scheduler.step\(\)` before `optimizer.step\(\)"):
        for _ in range(5):
            scheduler.step()  # wrong place
            used.append(optimizer.param_groups[0]["lr"])
            param.grad = torch.zeros(1)
            optimizer.step()
    assert used == pytest.approx([warmup_cosine_lr(t + 1, **kw) for t in range(5)], rel=1e-12)
    assert used[3] == pytest.approx(kw["peak_lr"], rel=1e-12)  # the peak arrives one update early


def test_right_order_does_not_warn() -> None:
    model = small_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = warmup_cosine_scheduler(optimizer, peak_lr=0.01, warmup_steps=2, total_steps=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log = [
            train_step(model, optimizer, *batch(seed=t), scheduler=scheduler).lr for t in range(5)
        ]
    assert log == pytest.approx([0.0, 0.005, 0.01, 0.0075, 0.0025], rel=1e-12)


def run_with_checkpoint(resume_scheduler: bool) -> list[float]:
    """Train 6 of 20 steps, save, rebuild everything from the checkpoint, train 6 more."""
    kw = dict(peak_lr=0.01, warmup_steps=5, total_steps=20, initial_lr=0.001, min_lr=0.001)
    model = small_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = warmup_cosine_scheduler(optimizer, **kw)
    lrs = [train_step(model, optimizer, *batch(seed=t), scheduler=scheduler).lr for t in range(6)]
    checkpoint = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
    if resume_scheduler:
        checkpoint["scheduler"] = scheduler.state_dict()

    model = small_model(seed=1)
    model.load_state_dict(checkpoint["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = warmup_cosine_scheduler(optimizer, **kw)  # before loading the optimizer state
    optimizer.load_state_dict(checkpoint["optimizer"])
    if resume_scheduler:
        scheduler.load_state_dict(checkpoint["scheduler"])
    for t in range(6, 12):
        lrs.append(train_step(model, optimizer, *batch(seed=t), scheduler=scheduler).lr)
    return lrs


def test_pitfall_resuming_without_the_scheduler_state_restarts_warmup() -> None:
    kw = dict(peak_lr=0.01, warmup_steps=5, total_steps=20, initial_lr=0.001, min_lr=0.001)
    expected = [warmup_cosine_lr(t, **kw) for t in range(12)]
    assert run_with_checkpoint(resume_scheduler=True) == pytest.approx(expected, rel=1e-12)
    restarted = run_with_checkpoint(resume_scheduler=False)
    assert restarted[:6] == pytest.approx(expected[:6], rel=1e-12)
    # Update 6 still uses lr(6), restored with the optimizer's param groups; but the new
    # scheduler counts from 0, so its next step() sets lr(1): warmup starts again.
    assert restarted[6] == pytest.approx(expected[6], rel=1e-12)
    warmup_again = [warmup_cosine_lr(t, **kw) for t in range(1, 6)]
    assert restarted[7:] == pytest.approx(warmup_again, rel=1e-12)


def test_loading_the_optimizer_state_before_building_the_scheduler_is_caught() -> None:
    model = small_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = warmup_cosine_scheduler(optimizer, peak_lr=0.01, warmup_steps=5, total_steps=20)
    train_step(model, optimizer, *batch(), scheduler=scheduler)
    saved = optimizer.state_dict()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    optimizer.load_state_dict(saved)  # lr is now lr(1), not the peak
    with pytest.raises(ValueError, match="build the scheduler before loading"):
        warmup_cosine_scheduler(optimizer, peak_lr=0.01, warmup_steps=5, total_steps=20)


def test_train_logs_every_step_and_is_reproducible() -> None:
    ids = torch.randint(0, SMALL.vocab_size, (500,), generator=torch.Generator().manual_seed(0))
    logs = []
    for _ in range(2):
        model = small_model()
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
        scheduler = warmup_cosine_scheduler(optimizer, peak_lr=0.01, warmup_steps=3, total_steps=12)
        logs.append(
            train(
                model,
                optimizer,
                ids,
                total_steps=12,
                batch_size=4,
                context_length=8,
                scheduler=scheduler,
                max_norm=0.5,
                generator=torch.Generator().manual_seed(1),
            )
        )
    a, b = logs
    assert a == b
    assert len(a.losses) == len(a.lrs) == len(a.grad_norms) == len(a.clipped_grad_norms) == 12
    assert all(c <= 0.5 for c in a.clipped_grad_norms)
    assert a.lrs == pytest.approx(
        [warmup_cosine_lr(t, peak_lr=0.01, warmup_steps=3, total_steps=12) for t in range(12)],
        rel=1e-12,
    )


def test_train_step_rejects_bad_max_norm() -> None:
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="max_norm must be > 0"):
        train_step(model, optimizer, *batch(), max_norm=0.0)
    with pytest.raises(TypeError, match="max_norm must be None or a number"):
        train_step(model, optimizer, *batch(), max_norm="1")
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        train_step(model, "adam", *batch())
    with pytest.raises(ValueError, match="total_steps must be an int >= 1"):
        ids = torch.arange(20) % SMALL.vocab_size
        train(model, optimizer, ids, total_steps=0, batch_size=2, context_length=4)
