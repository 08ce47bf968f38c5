"""Scaling laws: how loss depends on model size and data, and how to spend a compute budget.

* :func:`training_flops` is ``C = 6 N D`` (Kaplan et al., 2020), re-exported from
  :mod:`tutorial_code.costs`; :func:`tutorial_code.costs.training_flops_per_token` counts a
  token of the book's GPT exactly.
* :class:`ScalingLaw` is the parametric loss of Hoffmann et al. (2022, eq. 2),
  ``L(N, D) = E + A / N^alpha + B / D^beta``, with its compute-optimal allocation in closed
  form (eq. 4). :data:`HOFFMANN_2022` is the paper's fit (eq. 10), :data:`BESIROGLU_2024` the
  re-fit of Besiroglu et al. (2024) on data read off the paper's Figure 4.
* :func:`fit_scaling_law` is Hoffmann et al.'s Approach 3 (eq. 3 and appendix D.2): a Huber
  loss on log-space residuals, minimised with L-BFGS from a grid of starting points.
  :func:`isoflop_minima` is Approach 2: a parabola in ``log N`` through each IsoFLOP profile,
  then a power law ``N_opt ∝ C^a`` through the minima (:func:`fit_power_law`).
* :func:`train_for_tokens` trains a model on a token budget with a warmup + cosine schedule
  whose length matches the budget, the set-up every point of an IsoFLOP sweep needs.
* Beyond compute-optimal: :func:`lifetime_optimal` adds inference cost (Sardana et al., 2023),
  :func:`effective_tokens` discounts repeated epochs (Muennighoff et al., 2023).

``N`` is a parameter count, ``D`` a number of training tokens, ``C`` training FLOPs and ``L``
a loss in nats per token throughout.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from tutorial_code.checks import check_float, check_int
from tutorial_code.costs import training_flops
from tutorial_code.stability import warmup_cosine_scheduler
from tutorial_code.training import TrainingLog, param_groups, train

__all__ = [
    "BESIROGLU_2024",
    "CHINCHILLA_INIT_GRID",
    "CHINCHILLA_TABLE3",
    "HOFFMANN_2022",
    "MUENNIGHOFF_R_D_STAR",
    "PUBLISHED_EXPONENTS",
    "PUBLISHED_RUNS",
    "IsoFLOPFit",
    "ScalingLaw",
    "effective_tokens",
    "fit_power_law",
    "fit_scaling_law",
    "huber_objective",
    "isoflop_minima",
    "lifetime_optimal",
    "train_for_tokens",
    "training_flops",
]


# --------------------------------------------------------------------------------------
# Argument checks for numbers that may be arrays
# --------------------------------------------------------------------------------------


def _positive_array(name: str, value: Any) -> np.ndarray:
    """``value`` (a number, sequence or array) as a float64 array; every entry finite and > 0."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, bool) or (
        not isinstance(value, (int, float, np.ndarray, np.number)) and not _is_sequence(value)
    ):
        raise TypeError(
            f"{name} must be a number, a sequence of numbers or an array, "
            f"got {type(value).__name__}"
        )
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold numbers, got {value!r}") from None
    if array.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(array)) or not np.all(array > 0):
        raise ValueError(f"{name} must be finite and > 0 everywhere, got {value!r}")
    return array


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _same_length(**arrays: np.ndarray) -> int:
    lengths = {name: a.shape for name, a in arrays.items()}
    shapes = set(lengths.values())
    if len(shapes) != 1 or any(len(s) != 1 for s in shapes):
        listed = ", ".join(f"{name} {shape}" for name, shape in lengths.items())
        raise ValueError(f"the inputs must be 1-D and of the same length, got {listed}")
    return next(iter(shapes))[0]


def _unwrap(result: np.ndarray, like: Any) -> Any:
    """A float for scalar inputs, else an array (a tensor for tensor inputs)."""
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(result, dtype=like.dtype if like.is_floating_point() else None)
    if np.ndim(result) == 0:
        return float(result)
    return result


# --------------------------------------------------------------------------------------
# The parametric loss
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalingLaw:
    """``L(N, D) = E + A / N^alpha + B / D^beta`` (Hoffmann et al., 2022, eq. 2).

    ``E`` is the loss of an ideal model of the text (its entropy), ``A / N^alpha`` what a
    model of ``N`` parameters loses to it even when trained to the end, ``B / D^beta`` what
    stopping after ``D`` tokens costs. All five numbers must be positive.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        for name in ("E", "A", "B", "alpha", "beta"):
            check_float(f"ScalingLaw.{name}", getattr(self, name), low=0.0, low_open=True)

    def loss(self, N: Any, D: Any) -> Any:
        """The predicted loss; ``N`` and ``D`` broadcast (floats, arrays or tensors)."""
        n, d = _positive_array("N", N), _positive_array("D", D)
        result = self.E + self.A / n**self.alpha + self.B / d**self.beta
        return _unwrap(result, N if isinstance(N, torch.Tensor) else D)

    @property
    def exponents(self) -> tuple[float, float]:
        """``(a, b)`` with ``N_opt ∝ C^a`` and ``D_opt ∝ C^b``: ``a = beta / (alpha + beta)``,
        ``b = alpha / (alpha + beta)`` (eq. 4); ``a + b = 1``."""
        s = self.alpha + self.beta
        return self.beta / s, self.alpha / s

    @property
    def G(self) -> float:
        """``G = (alpha A / (beta B))^(1 / (alpha + beta))`` of eq. 4."""
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def compute_optimal(self, C: Any) -> tuple[Any, Any]:
        """``(N_opt, D_opt)`` minimising ``L(N, D)`` subject to ``6 N D = C`` (eq. 4).

        Substituting ``D = C / (6 N)`` and setting ``dL/dN = 0`` gives
        ``alpha A / N^alpha = beta B / D^beta``: at the optimum the two terms' elasticities
        balance. Solving, ``N_opt = G (C/6)^a`` and ``D_opt = (C/6)^b / G`` with
        ``a, b = self.exponents``. ``C`` may be a float, an array or a tensor.
        """
        c = _positive_array("C", C)
        a, b = self.exponents
        n_opt = self.G * (c / 6.0) ** a
        d_opt = (c / 6.0) ** b / self.G
        return _unwrap(n_opt, C), _unwrap(d_opt, C)


#: Hoffmann et al. (2022), "Training Compute-Optimal Large Language Models", Approach 3,
#: eq. 10: E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28. The constants are
#: rounded: they give a = beta / (alpha + beta) = 0.4516, where Table 2 reports 0.46 (from the
#: unrounded fit).
HOFFMANN_2022 = ScalingLaw(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

#: Besiroglu, Erdil, Barnett and You (2024), "Chinchilla Scaling: A replication attempt"
#: (arXiv 2404.10102): Approach 3 re-fitted on 240 runs read off Hoffmann et al.'s Figure 4,
#: E = 1.8172, A = 482.01, B = 2085.43, alpha = 0.3478, beta = 0.3658, so a = 0.5126, close
#: to Approaches 1 and 2.
BESIROGLU_2024 = ScalingLaw(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)

#: Table 2 of Hoffmann et al. (2022): the exponents ``(a, b)`` of ``N_opt ∝ C^a`` and
#: ``D_opt ∝ C^b`` each approach found (10th-90th percentile intervals in the paper:
#: Approach 1 a in (0.488, 0.502), Approach 2 (0.462, 0.534), Approach 3 (0.454, 0.455)),
#: and Kaplan et al.'s (2020) allocation as Hoffmann et al. list it.
PUBLISHED_EXPONENTS: dict[str, tuple[float, float]] = {
    "Approach 1 (training curves)": (0.50, 0.50),
    "Approach 2 (IsoFLOP profiles)": (0.49, 0.51),
    "Approach 3 (parametric fit)": (0.46, 0.54),
    "Kaplan et al. (2020)": (0.73, 0.27),
}

#: Table 3 of Hoffmann et al. (2022), from Approach 1: ``(parameters, FLOPs, tokens)`` of a
#: compute-optimal model. ``6 N D`` reproduces the FLOPs column to within 1% in every row but
#: the 67B one, whose "1.5 Trillion" tokens is 1.43 trillion under ``6 N D`` (4.7%).
CHINCHILLA_TABLE3: tuple[tuple[float, float, float], ...] = (
    (400e6, 1.92e19, 8.0e9),
    (1e9, 1.21e20, 20.2e9),
    (10e9, 1.23e22, 205.1e9),
    (67e9, 5.76e23, 1.5e12),
    (175e9, 3.85e24, 3.7e12),
    (280e9, 9.90e24, 5.9e12),
    (520e9, 3.43e25, 11.0e12),
    (1e12, 1.27e26, 21.2e12),
    (10e12, 1.30e28, 216.2e12),
)

#: Published models, ``name: (parameters, training tokens)``, with nominal sizes: GPT-3,
#: Gopher and Chinchilla from Table 1 of Hoffmann et al. (2022); Llama 2 ("pretrained on 2
#: trillion tokens", Touvron et al., 2023); Llama 3 8B and 70B ("over 15 trillion tokens",
#: Meta's model card, 2024); Llama 3 405B ("405B parameters on 15.6T tokens", Llama Team,
#: 2024).
PUBLISHED_RUNS: dict[str, tuple[float, float]] = {
    "GPT-3": (175e9, 300e9),
    "Gopher": (280e9, 300e9),
    "Chinchilla": (70e9, 1.4e12),
    "Llama 2 7B": (7e9, 2e12),
    "Llama 2 70B": (70e9, 2e12),
    "Llama 3 8B": (8e9, 15e12),
    "Llama 3 70B": (70e9, 15e12),
    "Llama 3 405B": (405e9, 15.6e12),
}


# --------------------------------------------------------------------------------------
# Approach 3: fitting the parametric loss
# --------------------------------------------------------------------------------------

#: Hoffmann et al.'s grid of L-BFGS starting points (appendix D.2), in the fitted variables
#: ``(a, b, e, alpha, beta)`` with ``A, B, E = exp(a), exp(b), exp(e)``: alpha and beta in
#: {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1}, a and b in {0, 5, ..., 25}; 4,500 points.
CHINCHILLA_INIT_GRID: tuple[tuple[float, float, float, float, float], ...] = tuple(
    itertools.product(
        (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
        (-1.0, -0.5, 0.0, 0.5, 1.0),
        (0.0, 0.5, 1.0, 1.5, 2.0),
        (0.0, 0.5, 1.0, 1.5, 2.0),
    )
)


def _log_residuals(
    params: torch.Tensor, log_n: torch.Tensor, log_d: torch.Tensor, log_loss: torch.Tensor
) -> torch.Tensor:
    """``LSE(a - alpha log N, b - beta log D, e) - log L``; ``params`` ``(..., 5)``."""
    a, b, e, alpha, beta = (params[..., i, None] for i in range(5))
    terms = torch.stack(
        [a - alpha * log_n, b - beta * log_d, e.expand(*e.shape[:-1], log_n.shape[-1])]
    )
    # log(A/N^alpha + B/D^beta + E) = LSE(a - alpha log N, b - beta log D, e)
    return torch.logsumexp(terms, dim=0) - log_loss


def _huber_sum(residuals: torch.Tensor, delta: float) -> torch.Tensor:
    """``sum_i Huber_delta(r_i)``: ``r^2 / 2`` inside ``|r| <= delta``, ``delta (|r| - delta/2)``
    outside (Huber, 1964). A sum, not a mean: Besiroglu et al. (2024) trace part of the
    original fit's trouble to averaging, which shrinks the objective below L-BFGS's
    tolerances."""
    return torch.nn.functional.huber_loss(
        residuals, torch.zeros_like(residuals), delta=delta, reduction="none"
    ).sum(-1)


def huber_objective(law: ScalingLaw, N: Any, D: Any, loss: Any, *, delta: float = 1e-3) -> float:
    """The objective of eq. 3 for ``law``: ``sum_i Huber_delta(log L_hat(N_i, D_i) - log L_i)``."""
    if not isinstance(law, ScalingLaw):
        raise TypeError(f"law must be a ScalingLaw, got {type(law).__name__}")
    delta = check_float("delta", delta, low=0.0, low_open=True)
    n, d, y = _positive_array("N", N), _positive_array("D", D), _positive_array("loss", loss)
    _same_length(N=n, D=d, loss=y)
    params = torch.tensor(
        [math.log(law.A), math.log(law.B), math.log(law.E), law.alpha, law.beta],
        dtype=torch.float64,
    )
    as_t = {k: torch.from_numpy(np.log(v)) for k, v in (("n", n), ("d", d), ("y", y))}
    return float(_huber_sum(_log_residuals(params, as_t["n"], as_t["d"], as_t["y"]), delta))


def _lbfgs(
    start: torch.Tensor,
    log_n: torch.Tensor,
    log_d: torch.Tensor,
    log_y: torch.Tensor,
    delta: float,
    max_iter: int,
) -> tuple[float, torch.Tensor]:
    """Minimise the eq. 3 objective with L-BFGS from ``start``; return (objective, params)."""
    params = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [params],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = _huber_sum(_log_residuals(params, log_n, log_d, log_y), delta)
        value.backward()
        return value

    optimizer.step(closure)
    with torch.no_grad():
        value = float(_huber_sum(_log_residuals(params, log_n, log_d, log_y), delta))
    return value, params.detach()


def fit_scaling_law(
    N: Any,
    D: Any,
    loss: Any,
    *,
    delta: float = 1e-3,
    grid: Sequence[Sequence[float]] = CHINCHILLA_INIT_GRID,
    n_starts: int = 8,
    max_iter: int = 200,
) -> ScalingLaw:
    """Fit ``L(N, D) = E + A / N^alpha + B / D^beta`` as Hoffmann et al.'s Approach 3 does.

    Minimises eq. 3 / 11 of the paper,
    ``sum_i Huber_delta(LSE(a - alpha log N_i, b - beta log D_i, e) - log L_i)``, over
    ``(a, b, e, alpha, beta)`` with L-BFGS (PyTorch's, strong-Wolfe line search, float64)
    and returns ``ScalingLaw(exp(e), exp(a), exp(b), alpha, beta)``. Working on ``log L``
    makes every run count by its *relative* error, and the Huber loss with a small
    ``delta`` (the paper's ``1e-3``) treats residuals above ``delta`` almost like an L1
    loss, so a few bad runs do not drag the fit.

    Starting points: the paper starts L-BFGS from each point of its grid
    (:data:`CHINCHILLA_INIT_GRID`, 4,500 points) and keeps the best fit. That takes minutes;
    we evaluate the objective at every grid point in one vectorised pass and start L-BFGS
    from the ``n_starts`` best points (ties broken by grid order), keeping the best result.
    The answer is deterministic: the same data give the same law on every run.

    Args:
        N, D, loss: 1-D, equal lengths, all entries > 0 (at least 5 runs: five parameters).
        delta: the Huber threshold on log residuals.
        grid: starting points ``(a, b, e, alpha, beta)``.
        n_starts: how many of the best grid points L-BFGS starts from.
        max_iter: L-BFGS iterations per start.
    """
    n, d, y = _positive_array("N", N), _positive_array("D", D), _positive_array("loss", loss)
    count = _same_length(N=n, D=d, loss=y)
    if count < 5:
        raise ValueError(f"fitting five parameters needs at least 5 runs, got {count}")
    delta = check_float("delta", delta, low=0.0, low_open=True)
    check_int("n_starts", n_starts, low=1)
    check_int("max_iter", max_iter, low=1)
    starts = torch.as_tensor(np.asarray(grid, dtype=np.float64))
    if starts.dim() != 2 or starts.shape[1] != 5 or starts.shape[0] == 0:
        raise ValueError(
            f"grid must be a non-empty list of 5-tuples, got shape {tuple(starts.shape)}"
        )
    log_n, log_d, log_y = (torch.from_numpy(np.log(v)) for v in (n, d, y))

    with torch.no_grad():
        screen = _huber_sum(_log_residuals(starts, log_n, log_d, log_y), delta)
    screen = torch.nan_to_num(screen, nan=math.inf)
    order = sorted(range(len(screen)), key=lambda i: (float(screen[i]), i))[:n_starts]

    best_value, best_params = math.inf, None
    for index in order:
        value, candidate = _lbfgs(starts[index], log_n, log_d, log_y, delta, max_iter)
        if math.isfinite(value) and value < best_value and bool((candidate[3:] > 0).all()):
            best_value, best_params = value, candidate
    if best_params is None:
        raise RuntimeError("no start converged to positive exponents; check the data")
    a, b, e, alpha, beta = (float(v) for v in best_params)
    return ScalingLaw(E=math.exp(e), A=math.exp(a), B=math.exp(b), alpha=alpha, beta=beta)


# --------------------------------------------------------------------------------------
# Approach 2: IsoFLOP profiles
# --------------------------------------------------------------------------------------


def fit_power_law(x: Any, y: Any) -> tuple[float, float]:
    """``(k, p)`` of ``y = k x^p``, fitted by least squares on ``log y = log k + p log x``.

    In log space every point counts by its relative error; a least-squares fit of
    ``k x^p`` to ``y`` itself would be decided by the few largest ``y`` (see the pitfall
    test ``test_pitfall_fitting_a_power_law_in_linear_space``).
    """
    xs, ys = _positive_array("x", x), _positive_array("y", y)
    count = _same_length(x=xs, y=ys)
    if count < 2:
        raise ValueError(f"fitting a line needs at least 2 points, got {count}")
    lx, ly = np.log(xs), np.log(ys)
    if np.ptp(lx) == 0:
        raise ValueError("x must take at least two different values")
    p = float(np.sum((lx - lx.mean()) * (ly - ly.mean())) / np.sum((lx - lx.mean()) ** 2))
    return float(math.exp(ly.mean() - p * lx.mean())), p


@dataclass(frozen=True)
class IsoFLOPFit:
    """What :func:`isoflop_minima` found.

    Attributes:
        budgets: the distinct compute budgets ``C``, ascending.
        n_opt: per budget, the ``N`` at the vertex of the parabola in ``log N``.
        loss_opt: per budget, the parabola's value there.
        parabolas: per budget, ``(c2, c1, c0)`` of ``loss = c2 x^2 + c1 x + c0``,
            ``x = ln N``.
        bracketed: per budget, whether the vertex lies inside the sizes trained (if not,
            the minimum is an extrapolation: train sizes on both sides of it).
        d_opt: per budget, ``D`` at the vertex of a parabola in ``log D`` (when the tokens
            were given), else ``None``.
        n_coefficient, a: ``N_opt = n_coefficient * C^a``.
        d_coefficient, b: ``D_opt = d_coefficient * C^b`` (``None`` without tokens).
    """

    budgets: tuple[float, ...]
    n_opt: tuple[float, ...]
    loss_opt: tuple[float, ...]
    parabolas: tuple[tuple[float, float, float], ...]
    bracketed: tuple[bool, ...]
    d_opt: tuple[float, ...] | None
    n_coefficient: float
    a: float
    d_coefficient: float | None
    b: float | None

    def predict(self, C: float) -> tuple[float, float | None]:
        """``(N_opt, D_opt)`` at budget ``C`` from the fitted power laws."""
        c = check_float("C", C, low=0.0, low_open=True)
        n = self.n_coefficient * c**self.a
        if self.d_coefficient is None or self.b is None:
            return n, None
        return n, self.d_coefficient * c**self.b


def _vertex(x: np.ndarray, loss: np.ndarray, budget: float) -> tuple[float, tuple, bool, float]:
    c2, c1, c0 = (float(v) for v in np.polyfit(x, loss, 2))
    if not c2 > 0:
        raise ValueError(
            f"the losses at budget {budget:.3g} are not convex in log N (no minimum): "
            "train sizes on both sides of the best one"
        )
    x_min = -c1 / (2 * c2)
    bracketed = bool(x.min() <= x_min <= x.max())
    return x_min, (c2, c1, c0), bracketed, c0 - c1 * c1 / (4 * c2)


def isoflop_minima(compute: Any, n_params: Any, loss: Any, n_tokens: Any = None) -> IsoFLOPFit:
    """Hoffmann et al.'s Approach 2: the loss-optimal size at each budget, then a power law.

    Runs that share a compute budget form an IsoFLOP profile (group by equal ``compute``
    values). For each, a parabola in ``x = ln N`` is fitted to the losses by least squares
    and its vertex ``x* = -c1 / (2 c2)`` gives ``N_opt`` (with ``n_tokens``, a parabola in
    ``ln D`` gives ``D_opt`` the same way). Then ``N_opt = k C^a`` (and ``D_opt = k' C^b``)
    is fitted through the minima with :func:`fit_power_law`.

    Args:
        compute, n_params, loss: one entry per run, 1-D and of equal length.
        n_tokens: the runs' training tokens (optional).

    Raises:
        ValueError: a budget with fewer than 3 runs (a parabola needs three), fewer than
            2 budgets, or a profile that is not convex (no minimum).
    """
    c = _positive_array("compute", compute)
    n = _positive_array("n_params", n_params)
    y = _positive_array("loss", loss)
    arrays = {"compute": c, "n_params": n, "loss": y}
    d = None
    if n_tokens is not None:
        d = _positive_array("n_tokens", n_tokens)
        arrays["n_tokens"] = d
    _same_length(**arrays)
    budgets = sorted(set(c.tolist()))
    if len(budgets) < 2:
        raise ValueError(f"a power law across budgets needs at least 2 budgets, got {budgets}")
    n_opt, loss_opt, parabolas, bracketed, d_opt = [], [], [], [], []
    for budget in budgets:
        mask = c == budget
        if int(mask.sum()) < 3:
            raise ValueError(
                f"budget {budget:.3g} has {int(mask.sum())} runs; a parabola needs at least 3"
            )
        x_min, coefficients, inside, value = _vertex(np.log(n[mask]), y[mask], budget)
        n_opt.append(math.exp(x_min))
        loss_opt.append(value)
        parabolas.append(coefficients)
        bracketed.append(inside)
        if d is not None:
            d_opt.append(math.exp(_vertex(np.log(d[mask]), y[mask], budget)[0]))
    k, a = fit_power_law(budgets, n_opt)
    kd, b = fit_power_law(budgets, d_opt) if d is not None else (None, None)
    return IsoFLOPFit(
        budgets=tuple(budgets),
        n_opt=tuple(n_opt),
        loss_opt=tuple(loss_opt),
        parabolas=tuple(parabolas),
        bracketed=tuple(bracketed),
        d_opt=tuple(d_opt) if d is not None else None,
        n_coefficient=k,
        a=a,
        d_coefficient=kd,
        b=b,
    )


# --------------------------------------------------------------------------------------
# One point of a sweep: train on a token budget with a schedule that matches it
# --------------------------------------------------------------------------------------


def train_for_tokens(
    model: nn.Module,
    train_ids: torch.Tensor,
    *,
    n_tokens: int,
    batch_size: int,
    context_length: int,
    peak_lr: float,
    warmup_fraction: float = 0.05,
    min_lr_ratio: float = 0.1,
    weight_decay: float = 0.1,
    max_norm: float | None = 1.0,
    schedule_tokens: int | None = None,
    seed: int = 0,
) -> TrainingLog:
    """Train ``model`` on ``n_tokens`` tokens with AdamW and a warmup + cosine schedule.

    The run makes ``steps = n_tokens // (batch_size * context_length)`` updates on random
    windows of ``train_ids`` (drawn with ``torch.Generator().manual_seed(seed)``). The
    learning rate warms up linearly over ``warmup_fraction`` of the schedule and follows a
    cosine down to ``min_lr_ratio * peak_lr`` (a 10x decay by default, as in Hoffmann et al.,
    2022, section 3.1) at the end of ``schedule_tokens``, which defaults to the run's own
    budget. Hoffmann et al. found that the schedule must end where the run ends: a loss read
    in the middle of a longer schedule (``schedule_tokens > n_tokens``, Kaplan et al.'s
    set-up) overestimates what that many tokens can reach (pitfall test
    ``test_pitfall_a_cosine_schedule_cut_short_overstates_the_loss``).

    AdamW uses ``betas=(0.9, 0.95)`` and decays only the weight matrices
    (:func:`tutorial_code.training.param_groups`); gradients are clipped to ``max_norm``.
    Returns the per-step :class:`~tutorial_code.training.TrainingLog`.
    """
    check_int("n_tokens", n_tokens, low=1)
    check_int("batch_size", batch_size, low=1)
    check_int("context_length", context_length, low=1)
    peak_lr = check_float("peak_lr", peak_lr, low=0.0, low_open=True)
    warmup_fraction = check_float(
        "warmup_fraction", warmup_fraction, low=0.0, high=1.0, high_open=True
    )
    min_lr_ratio = check_float("min_lr_ratio", min_lr_ratio, low=0.0, high=1.0)
    check_int("schedule_tokens", schedule_tokens, low=n_tokens, allow_none=True)
    check_int("seed", seed, low=0)
    tokens_per_step = batch_size * context_length
    steps = n_tokens // tokens_per_step
    if steps < 2:
        raise ValueError(
            f"n_tokens={n_tokens} gives {steps} step(s) of {tokens_per_step} tokens; "
            "need at least 2"
        )
    schedule_steps = steps if schedule_tokens is None else schedule_tokens // tokens_per_step
    warmup_steps = round(warmup_fraction * schedule_steps)
    optimizer = torch.optim.AdamW(
        param_groups(model, weight_decay=weight_decay), lr=peak_lr, betas=(0.9, 0.95)
    )
    scheduler = warmup_cosine_scheduler(
        optimizer,
        peak_lr=peak_lr,
        warmup_steps=warmup_steps,
        total_steps=schedule_steps,
        min_lr=min_lr_ratio * peak_lr,
    )
    return train(
        model,
        optimizer,
        train_ids,
        total_steps=steps,
        batch_size=batch_size,
        context_length=context_length,
        scheduler=scheduler,
        max_norm=max_norm,
        generator=torch.Generator().manual_seed(seed),
    )


# --------------------------------------------------------------------------------------
# Beyond compute-optimal
# --------------------------------------------------------------------------------------


def lifetime_optimal(
    law: ScalingLaw, *, loss: float, inference_tokens: float = 0.0
) -> tuple[float, float]:
    """``(N, D)`` reaching ``loss`` at the least lifetime compute ``6 N D + 2 N D_inf``.

    Sardana et al. (2023, "Beyond Chinchilla-Optimal") add the cost of serving the model:
    ``2 N`` FLOPs per generated or read token (a forward pass) over ``inference_tokens``
    tokens of its lifetime. For each ``N`` the law gives the tokens needed to reach
    ``loss``, ``D(N) = (B / (loss - E - A / N^alpha))^(1 / beta)``; the total cost is
    minimised over ``ln N`` by golden-section search (the cost is infinite at the smallest
    ``N`` that can reach ``loss`` and grows like ``N`` for large ``N``). With
    ``inference_tokens = 0`` this is the compute-optimal model for that loss, the same point
    :meth:`ScalingLaw.compute_optimal` finds from the budget.
    """
    if not isinstance(law, ScalingLaw):
        raise TypeError(f"law must be a ScalingLaw, got {type(law).__name__}")
    loss = check_float("loss", loss, low=law.E, low_open=True)
    inference_tokens = check_float("inference_tokens", inference_tokens, low=0.0)
    gap = loss - law.E
    log_n_min = math.log(law.A / gap) / law.alpha  # A / N^alpha = gap: D would be infinite

    def tokens(log_n: float) -> float:
        left = gap - law.A * math.exp(-law.alpha * log_n)
        return (law.B / left) ** (1.0 / law.beta)

    def cost(log_n: float) -> float:
        n = math.exp(log_n)
        return 6.0 * n * tokens(log_n) + 2.0 * n * inference_tokens

    lo, hi = log_n_min + 1e-9, log_n_min + 40.0
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(200):  # golden-section search on ln N
        m1, m2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if cost(m1) <= cost(m2):
            hi = m2
        else:
            lo = m1
    log_n = 0.5 * (lo + hi)
    return math.exp(log_n), tokens(log_n)


#: Muennighoff et al. (2023), "Scaling Data-Constrained Language Models": the fitted
#: ``R_D* = 15.387756`` of their effective-data formula (released with their code).
MUENNIGHOFF_R_D_STAR = 15.387756


def effective_tokens(
    unique_tokens: float, epochs: float, *, r_star: float = MUENNIGHOFF_R_D_STAR
) -> float:
    """What ``epochs`` passes over ``unique_tokens`` are worth in fresh tokens.

    Muennighoff et al. (2023): with ``R = epochs - 1`` repetitions,
    ``D' = U + U R* (1 - exp(-R / R*))``. For small ``R`` this is ``U (1 + R)``, every pass
    as good as new data; it saturates at ``U (1 + R*)``: repeated data loses its value
    with a characteristic "half-life" of ``R*`` repetitions.
    """
    u = check_float("unique_tokens", unique_tokens, low=0.0, low_open=True)
    e = check_float("epochs", epochs, low=1.0)
    r_star = check_float("r_star", r_star, low=0.0, low_open=True)
    repetitions = e - 1.0
    return u + u * r_star * (1.0 - math.exp(-repetitions / r_star))
