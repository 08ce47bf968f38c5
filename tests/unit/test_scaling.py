"""Tests for tutorial_code.scaling and the exact FLOP count in tutorial_code.costs: closed forms
against brute-force minimisation, published numbers of Hoffmann et al. (2022) and Besiroglu et
al. (2024), FLOPs against torch.utils.flop_counter, fits against known laws, one stored sweep
point re-run, and one test behind each pitfall of chapter 1."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tests.paths import load_script
from tutorial_code import costs, scaling
from tutorial_code.corpora import tiny_stories
from tutorial_code.costs import gpt_parameter_count, training_flops_per_token
from tutorial_code.data import CharTokenizer
from tutorial_code.model import GPT2_SMALL_CONFIG, GPTConfig, GPTModel
from tutorial_code.scaling import (
    BESIROGLU_2024,
    CHINCHILLA_TABLE3,
    HOFFMANN_2022,
    MUENNIGHOFF_R_D_STAR,
    PUBLISHED_EXPONENTS,
    PUBLISHED_RUNS,
    ScalingLaw,
    effective_tokens,
    fit_power_law,
    fit_scaling_law,
    huber_objective,
    isoflop_minima,
    lifetime_optimal,
    train_for_tokens,
)
from tutorial_code.training import estimate_loss, lm_loss

ROOT = Path(__file__).resolve().parents[2]
GOPHER_FLOPS = 5.76e23

# A law unlike both published ones, for the synthetic tests.
TOY = ScalingLaw(E=1.5, A=60.0, B=90.0, alpha=0.36, beta=0.30)


def brute_force_optimum(law: ScalingLaw, c: float) -> float:
    """argmin over a fine grid of ln N of law.loss(N, C / (6 N)): the reference for eq. 4."""
    n_guess = law.compute_optimal(c)[0]
    log_n = np.linspace(math.log(n_guess) - 3, math.log(n_guess) + 3, 600_001)
    n = np.exp(log_n)
    losses = law.E + law.A / n**law.alpha + law.B / (c / (6 * n)) ** law.beta
    return float(n[np.argmin(losses)])


# --------------------------------------------------------------------------------------
# FLOPs
# --------------------------------------------------------------------------------------


def test_training_flops_is_the_cost_modules_function() -> None:
    """One formula, one implementation: scaling re-exports costs.training_flops."""
    assert scaling.training_flops is costs.training_flops
    assert scaling.training_flops(1e9, 20e9) == 6 * 1e9 * 20e9


@pytest.mark.parametrize(
    "cfg",
    [
        GPTConfig(
            vocab_size=50, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0
        ),
        GPTConfig(
            vocab_size=72,
            context_length=64,
            emb_dim=24,
            n_heads=2,
            n_layers=3,
            qkv_bias=True,
            drop_rate=0.0,
        ),
    ],
)
def test_training_flops_per_token_equals_flop_counter_on_forward_and_backward(cfg) -> None:
    """Reference: torch.utils.flop_counter.FlopCounterMode over lm_loss(...).backward()."""
    torch.manual_seed(0)
    model = GPTModel(cfg)
    x = torch.randint(0, cfg.vocab_size, (3, cfg.context_length))
    with FlopCounterMode(display=False) as counter:
        lm_loss(model, x, x.roll(-1, dims=1)).backward()
    assert counter.get_total_flops() == training_flops_per_token(cfg) * 3 * cfg.context_length


def test_training_flops_per_token_formula_by_hand() -> None:
    """3 (L (24 C^2 + 4 T C) + 2 C V), written out for GPT-2 small's shape."""
    c, t, layers, v = 768, 1024, 12, 50257
    expected = 3 * (layers * (24 * c * c + 4 * t * c) + 2 * c * v)
    assert training_flops_per_token(GPT2_SMALL_CONFIG) == expected
    assert training_flops_per_token(GPT2_SMALL_CONFIG, context_length=1) == 3 * (
        layers * (24 * c * c + 4 * c) + 2 * c * v
    )


def test_pitfall_6nd_undercounts_tiny_models_with_long_contexts() -> None:
    """Hand-derived: exact / 6N = 1 + (12 L T C + small terms) / 6N; large for small C, long T.

    6N (N without embeddings, the head included) leaves out the attention products 12 L T C
    per token. For the sweep's smallest-but-one model (width 16, T = 64) that is 40% more
    compute than 6N says; at T = 512 it is several times more; for GPT-2 small 15%.
    """

    def ratio(cfg: GPTConfig) -> float:
        return training_flops_per_token(cfg) / (
            6 * gpt_parameter_count(cfg, include_embeddings=False)
        )

    tiny = GPTConfig(
        vocab_size=72, context_length=64, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0
    )
    long = GPTConfig(
        vocab_size=72, context_length=512, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0
    )
    assert ratio(tiny) > 1.35
    assert ratio(long) > 3.0
    assert 1.10 < ratio(GPT2_SMALL_CONFIG) < 1.2
    # the excess is (almost all) the context term: 12 L T C over 6N
    for cfg in (tiny, long, GPT2_SMALL_CONFIG):
        n = gpt_parameter_count(cfg, include_embeddings=False)
        context_term = 12 * cfg.n_layers * cfg.context_length * cfg.emb_dim / (6 * n)
        assert ratio(cfg) - 1 == pytest.approx(context_term, abs=0.05)


# --------------------------------------------------------------------------------------
# The law and its closed-form optimum
# --------------------------------------------------------------------------------------


def test_loss_by_hand_and_broadcasting() -> None:
    """1 + 1/2 + 1/4 for E = A = B = alpha = beta = 1 at N = 2, D = 4; arrays and tensors."""
    law = ScalingLaw(E=1.0, A=1.0, B=1.0, alpha=1.0, beta=1.0)
    assert law.loss(2, 4) == 1.75
    assert isinstance(law.loss(2, 4), float)
    np.testing.assert_allclose(law.loss(np.array([2.0, 4.0]), 4), [1.75, 1.5])
    np.testing.assert_allclose(
        law.loss(np.array([[2.0], [4.0]]), np.array([4.0, 8.0])), [[1.75, 1.625], [1.5, 1.375]]
    )
    out = law.loss(torch.tensor([2.0, 4.0], dtype=torch.float64), 4.0)
    assert isinstance(out, torch.Tensor) and torch.allclose(
        out, torch.tensor([1.75, 1.5], dtype=torch.float64)
    )


@pytest.mark.parametrize("law", [HOFFMANN_2022, BESIROGLU_2024, TOY])
@pytest.mark.parametrize("c", [1e18, 1e21, GOPHER_FLOPS, 1e26])
def test_compute_optimal_equals_numerical_minimisation(law: ScalingLaw, c: float) -> None:
    """Reference: the minimum of loss(N, C / 6N) on a grid of 600,001 values of ln N."""
    n_opt, d_opt = law.compute_optimal(c)
    assert n_opt == pytest.approx(brute_force_optimum(law, c), rel=1e-4)
    assert 6 * n_opt * d_opt == pytest.approx(c, rel=1e-12)
    # at the optimum the two terms' elasticities balance: alpha A / N^alpha = beta B / D^beta
    assert law.alpha * law.A / n_opt**law.alpha == pytest.approx(law.beta * law.B / d_opt**law.beta)


def test_compute_optimal_broadcasts_over_budgets() -> None:
    """An array of budgets gives arrays; each entry equals the scalar call."""
    budgets = np.array([1e20, 1e22, 1e24])
    n, d = HOFFMANN_2022.compute_optimal(budgets)
    for i, c in enumerate(budgets):
        assert (n[i], d[i]) == pytest.approx(HOFFMANN_2022.compute_optimal(float(c)))


def test_hoffmann_fit_at_the_gopher_budget() -> None:
    """Published rounded constants (eq. 10) at C = 5.76e23: N = 32.2B, D = 2.98T (about 93
    tokens per parameter), far from Chinchilla's 70B on 1.4T: Table 3 comes from Approach 1."""
    n, d = HOFFMANN_2022.compute_optimal(GOPHER_FLOPS)
    assert round(n / 1e9, 1) == 32.2
    assert round(d / 1e12, 2) == 2.98
    assert round(d / n) == 93


def test_besiroglu_fit_at_the_gopher_budget() -> None:
    """Besiroglu et al.'s constants at C = 5.76e23: N = 72.25B, D = 1.33T, 18 tokens/parameter."""
    n, d = BESIROGLU_2024.compute_optimal(GOPHER_FLOPS)
    assert abs(n - 72.3e9) < 0.1e9
    assert round(d / 1e12, 2) == 1.33
    assert round(d / n) == 18


def test_rounded_hoffmann_constants_give_a_0452_not_table_2s_046() -> None:
    """beta / (alpha + beta) = 0.28 / 0.62 = 0.452; the unrounded values Besiroglu et al. read
    from the paper's TeX source (alpha = 0.33917, beta = 0.28491) give 0.457, which rounds to
    Table 2's 0.46."""
    a, b = HOFFMANN_2022.exponents
    assert round(a, 3) == 0.452 and a + b == pytest.approx(1.0)
    assert PUBLISHED_EXPONENTS["Approach 3 (parametric fit)"] == (0.46, 0.54)
    unrounded = ScalingLaw(E=1.6934, A=406.4, B=410.7, alpha=0.33917084, beta=0.2849083)
    assert round(unrounded.exponents[0], 2) == 0.46
    assert round(BESIROGLU_2024.exponents[0], 4) == 0.5126


def test_table_3_is_about_20_tokens_per_parameter_and_6nd() -> None:
    """Hoffmann et al. Table 3 (Approach 1): 1B -> 1.21e20 FLOPs -> 20.2B tokens, 67B -> 5.76e23
    -> 1.5T; 6 N D matches the FLOPs column to 1%, except the 67B row (4.7%, its tokens are
    rounded to two digits)."""
    rows = {n: (c, d) for n, c, d in CHINCHILLA_TABLE3}
    assert rows[1e9] == (1.21e20, 20.2e9) and rows[67e9] == (5.76e23, 1.5e12)
    for n, c, d in CHINCHILLA_TABLE3:
        assert 20 <= d / n <= 22.5
        tolerance = 0.05 if n == 67e9 else 0.01
        assert scaling.training_flops(n, d) == pytest.approx(c, rel=tolerance)


def test_published_runs_tokens_per_parameter() -> None:
    """Chinchilla 20 tokens/parameter, GPT-3 1.7, Llama 3 8B 1,875 (over 15T tokens on 8B)."""
    ratio = {name: d / n for name, (n, d) in PUBLISHED_RUNS.items()}
    assert ratio["Chinchilla"] == 20
    assert round(ratio["GPT-3"], 1) == 1.7
    assert ratio["Llama 3 8B"] == 1875


# --------------------------------------------------------------------------------------
# Approach 3: the parametric fit
# --------------------------------------------------------------------------------------


def synthetic_runs(law: ScalingLaw, noise: float, seed: int = 0):
    """6 sizes x 5 token counts, each loss times exp(noise * standard normal)."""
    rng = np.random.default_rng(seed)
    n = np.repeat(np.logspace(4, 7, 6), 5)
    d = np.tile(np.logspace(5, 9, 5), 6)
    return n, d, law.loss(n, d) * np.exp(noise * rng.standard_normal(n.size))


def test_fit_recovers_a_known_law_exactly_without_noise() -> None:
    """Reference: the constants the data were generated from."""
    fitted = fit_scaling_law(*synthetic_runs(TOY, noise=0.0), n_starts=4)
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(fitted, name) == pytest.approx(getattr(TOY, name), rel=1e-3)


def test_fit_recovers_a_known_law_from_noisy_runs() -> None:
    """0.5% multiplicative noise: exponents within 0.03, the allocation exponent a within 0.03."""
    fitted = fit_scaling_law(*synthetic_runs(TOY, noise=0.005, seed=1), n_starts=4)
    assert fitted.alpha == pytest.approx(TOY.alpha, abs=0.03)
    assert fitted.beta == pytest.approx(TOY.beta, abs=0.03)
    assert fitted.E == pytest.approx(TOY.E, abs=0.05)
    assert fitted.exponents[0] == pytest.approx(TOY.exponents[0], abs=0.03)


def test_fit_is_deterministic() -> None:
    """Two fits of the same data return identical laws (no randomness in the starts)."""
    runs = synthetic_runs(TOY, noise=0.005, seed=2)
    assert fit_scaling_law(*runs, n_starts=4) == fit_scaling_law(*runs, n_starts=4)


def test_huber_objective_by_hand() -> None:
    """Two runs: one residual inside delta (r^2 / 2), one outside (delta (|r| - delta / 2))."""
    law = ScalingLaw(E=1.0, A=1.0, B=1.0, alpha=1.0, beta=1.0)
    n, d = [2.0, 2.0], [4.0, 4.0]
    predicted = 1.75
    losses = [predicted * math.exp(-0.0005), predicted * math.exp(0.01)]  # residuals +5e-4, -0.01
    expected = 0.5 * 0.0005**2 + 1e-3 * (0.01 - 0.5e-3)
    assert huber_objective(law, n, d, losses) == pytest.approx(expected, rel=1e-9)


def test_huber_fit_shrugs_off_an_outlier_that_moves_a_squared_loss_fit() -> None:
    """One run 20% too high: the Huber fit (delta 1e-3) keeps a within 0.01 of the clean fit;
    a squared-loss fit (delta so large every residual is quadratic) moves further."""
    n, d, y = synthetic_runs(TOY, noise=0.002, seed=3)
    clean_huber = fit_scaling_law(n, d, y, n_starts=4).exponents[0]
    clean_square = fit_scaling_law(n, d, y, delta=10.0, n_starts=4).exponents[0]
    y_bad = y.copy()
    y_bad[0] *= 1.2
    moved_huber = abs(fit_scaling_law(n, d, y_bad, n_starts=4).exponents[0] - clean_huber)
    moved_square = abs(
        fit_scaling_law(n, d, y_bad, delta=10.0, n_starts=4).exponents[0] - clean_square
    )
    assert moved_huber < 0.01
    assert moved_square > 2 * moved_huber


# --------------------------------------------------------------------------------------
# Approach 2: IsoFLOP profiles and power laws
# --------------------------------------------------------------------------------------


def test_fit_power_law_is_exact_on_a_power_law() -> None:
    """y = 3 x^0.7 exactly: the log-space least squares returns (3, 0.7)."""
    x = np.logspace(1, 5, 9)
    k, p = fit_power_law(x, 3 * x**0.7)
    assert (k, p) == pytest.approx((3.0, 0.7))


def test_pitfall_fitting_a_power_law_in_linear_space() -> None:
    """Multiplicative 10% noise over four decades, 200 draws: least squares on y itself
    (scipy-free: torch L-BFGS on sum (y - k x^p)^2) is decided by the top points and misses
    the exponent by more than twice as much, on average, as the fit in log space."""
    x = np.logspace(0, 4, 8)
    rng = np.random.default_rng(0)
    errors_log, errors_linear = [], []
    for _ in range(200):
        y = 2.0 * x**0.5 * np.exp(0.1 * rng.standard_normal(x.size))
        errors_log.append(abs(fit_power_law(x, y)[1] - 0.5))
        params = torch.tensor([math.log(2.0), 0.5], dtype=torch.float64, requires_grad=True)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        optimizer = torch.optim.LBFGS([params], max_iter=200, line_search_fn="strong_wolfe")

        def closure(params=params, xt=xt, yt=yt, optimizer=optimizer) -> torch.Tensor:
            optimizer.zero_grad()
            value = ((yt - params[0].exp() * xt ** params[1]) ** 2).sum()
            value.backward()
            return value

        optimizer.step(closure)
        errors_linear.append(abs(params[1].item() - 0.5))
    assert np.mean(errors_linear) > 2 * np.mean(errors_log)


def isoflop_runs(law: ScalingLaw, budgets, width: float = 1.5, points: int = 7):
    """For each budget, sizes spread evenly in ln N around the law's optimum, D = C / 6N."""
    c, n, d = [], [], []
    for budget in budgets:
        centre = law.compute_optimal(budget)[0]
        for offset in np.linspace(-width, width, points):
            size = centre * math.exp(offset)
            c.append(budget)
            n.append(size)
            d.append(budget / (6 * size))
    return np.array(c), np.array(n), np.array(d)


def test_isoflop_minima_recover_the_laws_allocation() -> None:
    """Reference: the law's closed-form optimum (a parabola in ln N approximates each profile;
    with profiles symmetric about the optimum its vertex is close to it)."""
    budgets = [1e18, 1e19, 1e20, 1e21]
    c, n, d = isoflop_runs(TOY, budgets)
    fit = isoflop_minima(c, n, TOY.loss(n, d), d)
    assert fit.budgets == tuple(budgets)
    assert all(fit.bracketed)
    for budget, n_opt in zip(fit.budgets, fit.n_opt, strict=True):
        assert n_opt == pytest.approx(TOY.compute_optimal(budget)[0], rel=0.05)
    assert fit.a == pytest.approx(TOY.exponents[0], abs=0.02)
    assert fit.b == pytest.approx(TOY.exponents[1], abs=0.02)
    n_pred, d_pred = fit.predict(1e22)
    assert n_pred == pytest.approx(TOY.compute_optimal(1e22)[0], rel=0.1)
    assert d_pred == pytest.approx(TOY.compute_optimal(1e22)[1], rel=0.1)


def test_isoflop_minima_flags_a_minimum_outside_the_sizes_trained() -> None:
    """All sizes on one side of the optimum: the vertex is an extrapolation, bracketed False."""
    budgets = [1e18, 1e19]
    c, n, d = isoflop_runs(TOY, budgets)
    shifted = n * math.exp(3.0)  # every size 20x too large
    d_shifted = c / (6 * shifted)
    fit = isoflop_minima(c, shifted, TOY.loss(shifted, d_shifted))
    assert fit.bracketed == (False, False) and fit.d_opt is None and fit.b is None


# --------------------------------------------------------------------------------------
# Embedding parameters
# --------------------------------------------------------------------------------------


def test_pitfall_counting_embedding_parameters_bends_the_power_law() -> None:
    """Pearce & Song (2024): at small scale non-embedding and total counts are not
    proportional, so an exponent fitted in one is not the exponent in the other. With GPT-2's
    vocabulary and 12 layers, total parameters grow like N_non_embedding^0.68 between widths 64
    and 512 (embeddings dominate), like N_non_embedding^0.98 between 4096 and 16384."""

    def counts(widths):
        cfgs = [
            GPTConfig(vocab_size=50257, context_length=1024, emb_dim=w, n_heads=4, n_layers=12)
            for w in widths
        ]
        return (
            [gpt_parameter_count(cfg, include_embeddings=False, tied_head=True) for cfg in cfgs],
            [gpt_parameter_count(cfg, tied_head=True) for cfg in cfgs],
        )

    small_ne, small_total = counts([64, 128, 256, 512])
    large_ne, large_total = counts([4096, 8192, 16384])
    assert small_total[0] / small_ne[0] > 6  # at width 64 embeddings are 85% of the model
    assert fit_power_law(small_ne, small_total)[1] < 0.7
    assert fit_power_law(large_ne, large_total)[1] > 0.97


# --------------------------------------------------------------------------------------
# Training on a token budget
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def char_data():
    """Chapter 0's stories, one id per character; one torch thread while the module trains
    (a second thread on a busy machine makes these tiny models many times slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    text = tiny_stories(3000, seed=5)
    tokenizer = CharTokenizer.from_text(text)
    ids = torch.tensor(tokenizer.encode(text))
    split = int(0.9 * ids.numel())
    yield tokenizer.vocab_size, ids[:split], ids[split:]
    torch.set_num_threads(threads)


def tiny_model(vocab_size: int) -> GPTModel:
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=vocab_size, context_length=32, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0
    )
    return GPTModel(cfg)


def test_train_for_tokens_runs_the_schedule_to_its_end(char_data) -> None:
    """steps = n_tokens // (B T); lr(0) = 0, the last update's rate just above 0.1 * peak."""
    vocab_size, train_ids, _ = char_data
    log = train_for_tokens(
        tiny_model(vocab_size),
        train_ids,
        n_tokens=20 * 16 * 32 + 100,
        batch_size=16,
        context_length=32,
        peak_lr=0.01,
    )
    assert len(log) == 20
    assert log.lrs[0] == 0.0 and max(log.lrs) == pytest.approx(0.01)
    assert 0.001 < log.lrs[-1] < 0.0012


def test_pitfall_a_cosine_schedule_cut_short_overstates_the_loss(char_data) -> None:
    """Kaplan et al. read losses part-way through one long schedule; Hoffmann et al. (Figure
    A1) found a schedule matched to the run ends lower. Same model, batches and token budget:
    stopping at a quarter of a 4x longer schedule leaves the held-out loss higher (on these
    stories a 300-step run is past its first steep descent, where a high rate still helps)."""
    vocab_size, train_ids, val_ids = char_data
    kwargs = dict(n_tokens=300 * 16 * 32, batch_size=16, context_length=32, peak_lr=0.05, seed=1)
    matched, cut = tiny_model(vocab_size), tiny_model(vocab_size)
    train_for_tokens(matched, train_ids, **kwargs)
    log = train_for_tokens(cut, train_ids, schedule_tokens=4 * kwargs["n_tokens"], **kwargs)
    assert log.lrs[-1] > 0.8 * 0.02  # still near the peak when the run stops
    evaluate = dict(batch_size=32, context_length=32, n_batches=10)
    assert (
        estimate_loss(cut, val_ids, **evaluate) > estimate_loss(matched, val_ids, **evaluate) + 0.03
    )


# --------------------------------------------------------------------------------------
# Beyond compute-optimal
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("law", [HOFFMANN_2022, BESIROGLU_2024])
def test_lifetime_optimal_without_inference_is_compute_optimal(law: ScalingLaw) -> None:
    """Minimising compute at fixed loss is the dual of minimising loss at fixed compute."""
    n_opt, d_opt = law.compute_optimal(1e23)
    n, d = lifetime_optimal(law, loss=law.loss(n_opt, d_opt))
    assert (n, d) == pytest.approx((n_opt, d_opt), rel=1e-6)


def test_lifetime_optimal_with_inference_trains_a_smaller_model_longer() -> None:
    """Sardana et al.: with serving cost the optimum moves to smaller N and more tokens, at
    the same loss and a lower lifetime cost than the compute-optimal model."""
    law = BESIROGLU_2024
    n_opt, d_opt = law.compute_optimal(1e23)
    target = law.loss(n_opt, d_opt)
    inference = 10 * d_opt
    n, d = lifetime_optimal(law, loss=target, inference_tokens=inference)
    assert n < 0.8 * n_opt and d > 1.5 * d_opt
    assert law.loss(n, d) == pytest.approx(target, rel=1e-9)
    lifetime = 6 * n * d + 2 * n * inference
    assert lifetime < 6 * n_opt * d_opt + 2 * n_opt * inference


def test_effective_tokens_muennighoff() -> None:
    """U + U R* (1 - exp(-R / R*)) by hand: 1 epoch = U; 4 epochs 3.73 U; limit U (1 + R*)."""
    assert effective_tokens(1e9, 1) == 1e9
    assert effective_tokens(1.0, 4) == pytest.approx(
        1 + MUENNIGHOFF_R_D_STAR * (1 - math.exp(-3 / MUENNIGHOFF_R_D_STAR))
    )
    assert round(effective_tokens(1.0, 4), 2) == 3.73
    assert effective_tokens(1.0, 1e6) == pytest.approx(1 + MUENNIGHOFF_R_D_STAR)
    assert effective_tokens(1.0, 1.01) == pytest.approx(1.01, rel=1e-3)


# --------------------------------------------------------------------------------------
# The stored sweep
# --------------------------------------------------------------------------------------


def load_sweep() -> dict:
    return json.loads(
        (ROOT / "experiments" / "results" / "isoflop.json").read_text(encoding="utf-8")
    )


def test_stored_sweep_has_bracketed_isoflop_profiles() -> None:
    """experiments/isoflop.py wrote >= 3 budgets of >= 5 sizes, each profile with a minimum
    inside the sizes trained; the record states command, machine, date and seeds."""
    sweep = load_sweep()
    for key in ("command", "date", "machine", "seeds", "runs", "total_seconds"):
        assert key in sweep
    runs = sweep["runs"]
    fit = isoflop_minima(
        [r["budget"] for r in runs], [r["params"] for r in runs], [r["val_loss"] for r in runs]
    )
    assert len(fit.budgets) >= 3
    assert all(sum(r["budget"] == b for r in runs) >= 5 for b in fit.budgets)
    assert all(fit.bracketed)
    for r in runs:
        assert r["compute"] <= r["budget"] and r["compute"] > 0.98 * r["budget"]


def test_rerunning_the_cheapest_sweep_point_matches_the_stored_loss() -> None:
    """Re-run one point of experiments/isoflop.py (its own functions, same seeds and data)."""
    isoflop = load_script("experiments/isoflop.py")
    sweep = load_sweep()
    point = min(sweep["runs"], key=lambda r: r["train_seconds"])
    torch.set_num_threads(1)
    data = isoflop.build_data(sweep["corpus"])
    run = isoflop.run_point(data, budget=point["budget"], width=point["width"])
    assert (run["steps"], run["tokens"], run["params"]) == (
        point["steps"],
        point["tokens"],
        point["params"],
    )
    assert run["val_loss"] == pytest.approx(point["val_loss"], abs=0.02)


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="ScalingLaw.E"):
        ScalingLaw(E=0.0, A=1.0, B=1.0, alpha=0.3, beta=0.3)
    with pytest.raises(TypeError, match="ScalingLaw.alpha"):
        ScalingLaw(E=1.0, A=1.0, B=1.0, alpha="0.3", beta=0.3)
    with pytest.raises(ValueError, match="N must be finite and > 0"):
        HOFFMANN_2022.loss(-1.0, 1e9)
    with pytest.raises(ValueError, match="D must be finite and > 0"):
        HOFFMANN_2022.loss(1e9, [1e9, 0.0])
    with pytest.raises(TypeError, match="N must be a number"):
        HOFFMANN_2022.loss("1e9", 1e9)
    with pytest.raises(ValueError, match="C must be finite and > 0"):
        HOFFMANN_2022.compute_optimal(0.0)
    with pytest.raises(ValueError, match="same length"):
        fit_scaling_law([1e6] * 6, [1e8] * 5, [3.0] * 6)
    with pytest.raises(ValueError, match="at least 5 runs"):
        fit_scaling_law([1e6] * 4, [1e8] * 4, [3.0] * 4)
    with pytest.raises(ValueError, match="loss must be finite and > 0"):
        fit_scaling_law([1e6] * 5, [1e8] * 5, [3.0, 3.0, float("nan"), 3.0, 3.0])
    with pytest.raises(ValueError, match="needs at least 3"):
        isoflop_minima([1e18, 1e18, 1e19, 1e19, 1e19], [1, 2, 1, 2, 3], [3, 2, 3, 2, 3])
    with pytest.raises(ValueError, match="at least 2 budgets"):
        isoflop_minima([1e18] * 3, [1, 2, 3], [3, 2, 3])
    with pytest.raises(ValueError, match="not convex"):
        isoflop_minima([1e18] * 3 + [1e19] * 3, [1, 2, 3] * 2, [2, 3, 2] * 2)
    with pytest.raises(ValueError, match="x must take at least two"):
        fit_power_law([2.0, 2.0], [1.0, 3.0])
    with pytest.raises(ValueError, match="need at least 2"):
        train_for_tokens(
            tiny_model(10),
            torch.zeros(100, dtype=torch.long),
            n_tokens=40,
            batch_size=4,
            context_length=8,
            peak_lr=0.01,
        )
    with pytest.raises(ValueError, match="schedule_tokens"):
        train_for_tokens(
            tiny_model(10),
            torch.zeros(100, dtype=torch.long),
            n_tokens=1000,
            batch_size=4,
            context_length=8,
            peak_lr=0.01,
            schedule_tokens=10,
        )
    with pytest.raises(ValueError, match="loss"):
        lifetime_optimal(HOFFMANN_2022, loss=1.5)
    with pytest.raises(TypeError, match="law must be a ScalingLaw"):
        lifetime_optimal((1.69, 406.4), loss=2.0)
    with pytest.raises(ValueError, match="epochs"):
        effective_tokens(1e9, 0.5)
