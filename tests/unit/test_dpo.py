"""Tests for tutorial_code.dpo: the loss and its variants, the concatenated forward, the
pitfalls of chapter 8, the tabular check of the derivation and the trainer."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from tests.paths import load_script
from tests.unit.test_rl import TINY
from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.dpo import (
    LOSS_TYPES,
    DPOConfig,
    DPOTrainer,
    PreferenceBatch,
    concatenated_forward,
    dpo_loss,
    dpo_metrics,
    fit_tabular_dpo,
    optimal_policy,
    preference_batch,
    reference_logps,
    sample_pairs,
)
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.rl import token_logprobs
from tutorial_code.task import (
    TOKENIZER,
    explicit_prompt_to_hh,
    hh_to_explicit_prompt,
    sample_problems,
)

PAIRS = [
    {"prompt": "047+285=", "chosen": "7+5=12,4+8+1=13,0+2+1=3|332", "rejected": "|322"},
    {"prompt": "123+456=", "chosen": "|579", "rejected": "3+6=9,2+5=7,1+4=5|589"},
    {"prompt": "900+100=", "chosen": "|1000", "rejected": "|100"},
]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small models run fastest, and most reproducibly, on one thread (the book's rule)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int = 0, drop_rate: float = 0.0) -> GPTModel:
    torch.manual_seed(seed)
    cfg = GPTConfig(**{**TINY.__dict__, "drop_rate": drop_rate})
    return GPTModel(cfg).eval()


def one(value: float) -> torch.Tensor:
    return torch.tensor([value])


# --------------------------------------------------------------------------------------
# The loss
# --------------------------------------------------------------------------------------

# pi_c = -10, pi_r = -12, ref_c = -11, ref_r = -11.5, beta = 0.1: delta = 1.5
REFERENCE_INPUTS = (one(-10.0), one(-12.0), one(-11.0), one(-11.5))


@pytest.mark.parametrize(
    ("loss_type", "label_smoothing", "expected"),
    [
        ("sigmoid", 0.0, 0.620957),
        ("sigmoid", 0.1, 0.635957),
        ("robust", 0.1, 0.602207),
        ("hinge", 0.0, 0.85),
        ("ipo", 0.0, 12.25),
    ],
)
def test_reference_values(loss_type: str, label_smoothing: float, expected: float) -> None:
    """Reference: values derived by hand, log(1 + e^-0.15) = 0.620957 etc.; IPO's
    (1.5 - 1/(2 * 0.1))^2 = 12.25."""
    losses, chosen, rejected = dpo_loss(
        *REFERENCE_INPUTS, beta=0.1, loss_type=loss_type, label_smoothing=label_smoothing
    )
    assert losses.item() == pytest.approx(expected, abs=1e-6)
    assert chosen.item() == pytest.approx(0.1, abs=1e-7)
    assert rejected.item() == pytest.approx(-0.05, abs=1e-7)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def _reference_loss(
    pc: float, pr: float, rc: float, rr: float, beta: float, loss_type: str, eps: float
) -> float:
    """One pair in plain Python floats, written from the published formulas: DPO eq. 7 and
    the conservative-DPO note (TRL <= 0.28 "sigmoid"), Chowdhury et al.'s robust DPO, SLiC's hinge,
    IPO eq. 17."""
    margin = (pc - rc) - (pr - rr)
    if loss_type == "sigmoid":
        return -(1 - eps) * _log_sigmoid(beta * margin) - eps * _log_sigmoid(-beta * margin)
    if loss_type == "robust":
        clean = -(1 - eps) * _log_sigmoid(beta * margin)
        flipped = -eps * _log_sigmoid(-beta * margin)
        return (clean - flipped) / (1 - 2 * eps)
    if loss_type == "hinge":
        return max(0.0, 1 - beta * margin)
    return (margin - 1 / (2 * beta)) ** 2


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_equals_a_float64_reference_on_random_inputs(loss_type: str, seed: int) -> None:
    """Reference: an independent per-pair implementation in Python floats (float64)."""
    rng = random.Random(seed)
    n = 64
    logps = [[rng.uniform(-40.0, -0.1) for _ in range(n)] for _ in range(4)]
    beta = rng.choice([0.01, 0.1, 0.5, 2.0])
    eps = rng.uniform(0.0, 0.45) if loss_type in ("sigmoid", "robust") else 0.0
    tensors = [torch.tensor(v, dtype=torch.float64) for v in logps]
    losses, chosen, rejected = dpo_loss(
        *tensors, beta=beta, loss_type=loss_type, label_smoothing=eps
    )
    expected = [_reference_loss(*row, beta, loss_type, eps) for row in zip(*logps)]
    torch.testing.assert_close(losses, torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(
        chosen, torch.tensor([beta * (a - b) for a, b in zip(logps[0], logps[2])]).double()
    )
    torch.testing.assert_close(
        rejected, torch.tensor([beta * (a - b) for a, b in zip(logps[1], logps[3])]).double()
    )
    # float32 agrees with float64 to float32 precision
    losses32, _, _ = dpo_loss(
        *[t.float() for t in tensors], beta=beta, loss_type=loss_type, label_smoothing=eps
    )
    torch.testing.assert_close(losses32.double(), losses, rtol=1e-4, atol=1e-4)


def test_rewards_are_detached_and_the_loss_is_not() -> None:
    """Reference: TRL logs rewards without gradient; the loss must carry one."""
    pc = one(-10.0).requires_grad_(True)
    losses, chosen, rejected = dpo_loss(pc, *REFERENCE_INPUTS[1:])
    assert losses.requires_grad
    assert not chosen.requires_grad and not rejected.requires_grad


def test_gradient_weights_each_pair_by_how_wrong_its_implicit_reward_is() -> None:
    """Reference: the derivative by hand, d/d log pi(y_w) of -log sigma(beta delta) is
    -beta sigma(r_l - r_w) with r = beta (log pi - log pi_ref) (Rafailov et al., sec. 4)."""
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (-20 * torch.rand(8, generator=g, dtype=torch.float64) for _ in range(4))
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    beta = 0.3
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=beta)
    losses.sum().backward()
    weight = torch.sigmoid(rejected - chosen)  # large when the implicit reward ranks wrongly
    torch.testing.assert_close(pc.grad, -beta * weight)
    torch.testing.assert_close(pr.grad, beta * weight)


def test_pitfall_label_smoothing_has_a_sign() -> None:
    """Reference: conservative DPO is the cross-entropy against a label that is right with
    probability 1 - eps, so its minimum is at beta delta = log((1 - eps) / eps) (derived by
    setting the derivative to zero). The formula with the wrong sign,
    (1 - eps) * loss + eps * log sigma(-beta delta), falls without bound instead: it is robust
    DPO's loss (Chowdhury et al., 2024) times 1 - 2 eps, a different loss."""
    eps, beta = 0.1, 1.0
    x = torch.linspace(-10, 10, 2001, dtype=torch.float64)
    zero = torch.zeros_like(x)
    ours, _, _ = dpo_loss(x, zero, zero, zero, beta=beta, label_smoothing=eps)
    best = x[ours.argmin()].item()
    assert best == pytest.approx(math.log((1 - eps) / eps), abs=0.01)
    wrong = (1 - eps) * -F.logsigmoid(beta * x) + eps * F.logsigmoid(-beta * x)
    assert bool((wrong[1:] < wrong[:-1]).all())  # always decreasing: no minimum
    # at the chapter's reference pair the two differ
    wrong_ref = 0.9 * 0.620957 + 0.1 * _log_sigmoid(-0.15)
    right_ref = dpo_loss(*REFERENCE_INPUTS, label_smoothing=0.1)[0].item()
    assert wrong_ref == pytest.approx(0.481766, abs=1e-6)
    assert right_ref == pytest.approx(0.635957, abs=1e-6)
    # the wrong sign is robust DPO without its 1 / (1 - 2 eps): 0.8 * 0.602207 = 0.481766
    robust_ref = dpo_loss(*REFERENCE_INPUTS, loss_type="robust", label_smoothing=0.1)[0]
    assert wrong_ref == pytest.approx(0.8 * robust_ref.item(), abs=1e-6)


def test_robust_loss_is_unbiased_under_flipped_labels() -> None:
    """Reference: the defining property of Chowdhury et al.'s (2024) loss: if a label is
    flipped with probability eps, the expected robust loss is the clean DPO loss (a flip
    swaps chosen and rejected)."""
    g = torch.Generator().manual_seed(1)
    pc, pr, rc, rr = (-15 * torch.rand(16, generator=g, dtype=torch.float64) for _ in range(4))
    for eps in (0.05, 0.2, 0.4):
        kept, _, _ = dpo_loss(pc, pr, rc, rr, loss_type="robust", label_smoothing=eps)
        flipped, _, _ = dpo_loss(pr, pc, rr, rc, loss_type="robust", label_smoothing=eps)
        clean, _, _ = dpo_loss(pc, pr, rc, rr)
        torch.testing.assert_close((1 - eps) * kept + eps * flipped, clean)


def test_ipo_and_hinge_stop_at_a_finite_margin() -> None:
    """Reference: by hand, IPO's square is zero at delta = 1 / (2 beta); the hinge is zero for
    beta delta >= 1; DPO's sigmoid loss keeps decreasing."""
    beta = 0.25
    x = torch.linspace(-10, 10, 4001, dtype=torch.float64)
    zero = torch.zeros_like(x)
    ipo, _, _ = dpo_loss(x, zero, zero, zero, beta=beta, loss_type="ipo")
    assert x[ipo.argmin()].item() == pytest.approx(1 / (2 * beta), abs=1e-2)
    hinge, _, _ = dpo_loss(x, zero, zero, zero, beta=beta, loss_type="hinge")
    assert bool((hinge[x >= 1 / beta] == 0).all()) and bool((hinge[x < 1 / beta] > 0).all())
    sigmoid, _, _ = dpo_loss(x, zero, zero, zero, beta=beta)
    assert bool((sigmoid[1:] < sigmoid[:-1]).all())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"loss_type": "kto"}, ValueError, "loss_type must be one of"),
        ({"beta": 0.0}, ValueError, "beta must be > 0"),
        ({"beta": -1.0}, ValueError, "beta must be > 0"),
        ({"beta": True}, TypeError, "beta must be a number"),
        ({"label_smoothing": 0.5}, ValueError, r"label_smoothing must be in \[0.0, 0.5\)"),
        ({"label_smoothing": -0.1}, ValueError, "label_smoothing must be in"),
        (
            {"loss_type": "robust", "label_smoothing": 0.6},
            ValueError,
            "label_smoothing must be in",
        ),
        ({"loss_type": "hinge", "label_smoothing": 0.1}, ValueError, "must be 0 for"),
        ({"loss_type": "ipo", "label_smoothing": 0.1}, ValueError, "must be 0 for"),
    ],
)
def test_bad_loss_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        dpo_loss(*REFERENCE_INPUTS, **kwargs)


def test_bad_loss_tensors() -> None:
    a = torch.zeros(3)
    with pytest.raises(ValueError, match="reference_rejected_logps has shape"):
        dpo_loss(a, a, a, torch.zeros(4))
    with pytest.raises(ValueError, match="must have 1 dimension"):
        dpo_loss(torch.zeros(3, 2), a, a, a)
    with pytest.raises(ValueError, match="floating-point"):
        dpo_loss(torch.zeros(3, dtype=torch.long), a, a, a)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        dpo_loss([0.0], a, a, a)


def test_metrics_have_trl_names_and_a_strict_accuracy() -> None:
    """Reference: values by hand; TRL counts a tie as not accurate (chosen > rejected)."""
    chosen, rejected = torch.tensor([0.2, 0.0, -0.1]), torch.tensor([0.1, 0.0, 0.3])
    logps_c, logps_r = torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([-4.0, -5.0, -9.0])
    metrics = dpo_metrics(chosen, rejected, logps_c, logps_r)
    assert list(metrics) == [
        "rewards/chosen",
        "rewards/rejected",
        "rewards/accuracies",
        "rewards/margins",
        "logps/chosen",
        "logps/rejected",
    ]
    assert metrics["rewards/accuracies"] == pytest.approx(1 / 3)
    assert metrics["rewards/margins"] == pytest.approx((0.1 + 0.0 - 0.4) / 3)
    assert metrics["rewards/chosen"] == pytest.approx(0.1 / 3)
    assert metrics["logps/chosen"] == pytest.approx(-2.0)
    assert metrics["logps/rejected"] == pytest.approx(-6.0)
    with pytest.raises(ValueError, match="no pairs"):
        dpo_metrics(*(torch.zeros(0) for _ in range(4)))


# --------------------------------------------------------------------------------------
# The batch and the concatenated forward
# --------------------------------------------------------------------------------------


def _slow_logp(model: GPTModel, prompt: str, completion: str) -> float:
    """log pi(completion + EOS | prompt), one token at a time, each prefix run alone."""
    ids = TOKENIZER.encode(prompt + completion + ".")
    total = 0.0
    with torch.no_grad():
        for t in range(len(prompt), len(ids)):
            logits = model(torch.tensor([ids[:t]]))[0, -1]
            total += F.log_softmax(logits.double(), dim=-1)[ids[t]].item()
    return total


def test_preference_batch_layout() -> None:
    """Reference: the rows and masks written out by hand for the first pair."""
    batch = preference_batch(PAIRS)
    assert batch.num_pairs == 3 and batch.input_ids.shape[0] == 6
    first = TOKENIZER.decode(batch.input_ids[0].tolist())
    assert first.startswith("047+285=7+5=12,4+8+1=13,0+2+1=3|332.")
    assert TOKENIZER.decode(batch.input_ids[3].tolist()).rstrip("_") == "047+285=|322."
    assert batch.completion_mask[3].tolist()[:13] == [0] * 8 + [1] * 5
    chosen_len, rejected_len = batch.lengths
    assert chosen_len.tolist() == [28, 5, 6] and rejected_len.tolist() == [5, 22, 5]
    # HH-RLHF dialogues converted back give the same batch
    round_trip = [hh_to_explicit_prompt(explicit_prompt_to_hh(p)) for p in PAIRS]
    assert [p["chosen"] for p in round_trip] == [p["chosen"] for p in PAIRS]
    with pytest.raises(ValueError, match="non-empty sequence"):
        preference_batch([])
    with pytest.raises(ValueError, match="must have a str 'rejected'"):
        preference_batch([{"prompt": "1+1=", "chosen": "|2"}])
    with pytest.raises(TypeError, match=r"pairs\[0\] must be a dict"):
        preference_batch([("1+1=", "|2", "|3")])


def test_concatenated_forward_equals_one_prefix_at_a_time() -> None:
    """Reference: each completion token scored by a forward pass over its prefix alone."""
    model = tiny_model(3)
    chosen, rejected = concatenated_forward(model, preference_batch(PAIRS))
    for i, pair in enumerate(PAIRS):
        assert chosen[i].item() == pytest.approx(
            _slow_logp(model, pair["prompt"], pair["chosen"]), abs=1e-4
        )
        assert rejected[i].item() == pytest.approx(
            _slow_logp(model, pair["prompt"], pair["rejected"]), abs=1e-4
        )
    with pytest.raises(TypeError, match="batch must be a PreferenceBatch"):
        concatenated_forward(model, PAIRS)


def test_pitfall_off_by_one_label_shift() -> None:
    """Reference: the one-prefix-at-a-time log-probs. Gathering each token's log-prob from
    the logits at its own position (no shift) gives other numbers: the model is then scored
    on copying its input, not on predicting the next token."""
    model = tiny_model(4)
    batch = preference_batch(PAIRS)
    chosen, _ = concatenated_forward(model, batch)
    with torch.no_grad():
        logits = model(batch.input_ids)
        unshifted = token_logprobs(logits, batch.input_ids) * batch.completion_mask
        unshifted = unshifted.sum(dim=1)[: batch.num_pairs]
    slow = torch.tensor([_slow_logp(model, p["prompt"], p["chosen"]) for p in PAIRS])
    torch.testing.assert_close(chosen.double(), slow.double(), atol=1e-4, rtol=0)
    assert (unshifted - slow.float()).abs().min() > 0.1


def test_pitfall_padding_counted_in_log_probs() -> None:
    """Reference: the short pair run alone. In a batch with a long pair it is padded; with
    the completion mask its log-probs do not change, while a mask that counts everything
    after the prompt adds the padding's log-probs and makes them depend on the batch."""
    model = tiny_model(5)
    short = [PAIRS[2]]
    alone = concatenated_forward(model, preference_batch(short))
    batch = preference_batch([PAIRS[2], PAIRS[0]])
    together = concatenated_forward(model, batch)
    assert batch.input_ids.shape[1] > preference_batch(short).input_ids.shape[1]
    torch.testing.assert_close(together[0][:1], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(together[1][:1], alone[1], atol=1e-5, rtol=0)
    naive_mask = torch.ones_like(batch.completion_mask)
    naive_mask[:, :8] = 0  # everything after the prompt, padding included
    naive = PreferenceBatch(batch.input_ids, naive_mask)
    counted = concatenated_forward(model, naive)
    assert (counted[0][0] - alone[0][0]).abs() > 1.0


def test_pitfall_sum_and_mean_weigh_tokens_differently() -> None:
    """Reference: mean = sum / number of completion tokens (counted by hand); under the sum
    every completion token of a pair gets the same DPO gradient weight, under the mean a
    token of a long completion gets 1/length of it (autograd on per-token log-probs)."""
    model = tiny_model(6)
    batch = preference_batch(PAIRS)
    total = concatenated_forward(model, batch)
    mean = concatenated_forward(model, batch, average=True)
    chosen_len, rejected_len = batch.lengths
    torch.testing.assert_close(mean[0], total[0] / chosen_len)
    torch.testing.assert_close(mean[1], total[1] / rejected_len)
    # per-token log-probs of one pair: chosen has 28 tokens, rejected 5
    c_tokens = torch.full((28,), -0.1, requires_grad=True)
    r_tokens = torch.full((5,), -0.5, requires_grad=True)
    zero = torch.zeros(1)
    for average in (False, True):
        c_tokens.grad = r_tokens.grad = None
        c = c_tokens.mean() if average else c_tokens.sum()
        r = r_tokens.mean() if average else r_tokens.sum()
        losses, _, _ = dpo_loss(c.view(1), r.view(1), zero, zero, beta=0.1)
        losses.sum().backward()
        ratio = (r_tokens.grad[0] / c_tokens.grad[0]).abs().item()
        assert ratio == pytest.approx(28 / 5 if average else 1.0)


def test_pitfall_reference_model_in_train_mode_with_dropout() -> None:
    """Reference: the model in eval mode. With dropout active the reference log-probs
    change from call to call, so at step 0 (policy = reference) the loss is not log 2 and the
    implicit rewards are not 0; reference_logps switches dropout off and restores the
    mode."""
    ref = tiny_model(7, drop_rate=0.5).train()
    batch = preference_batch(PAIRS)
    torch.manual_seed(0)
    noisy_a = concatenated_forward(ref, batch)
    noisy_b = concatenated_forward(ref, batch)
    assert (noisy_a[0] - noisy_b[0]).abs().max() > 1e-3
    clean = reference_logps(ref, batch)
    assert ref.training  # restored
    assert not clean[0].requires_grad
    torch.testing.assert_close(clean[0], reference_logps(ref, batch)[0])
    policy = concatenated_forward(ref.eval(), batch)
    losses, chosen, rejected = dpo_loss(*policy, *clean)
    torch.testing.assert_close(losses, torch.full((3,), math.log(2.0)))
    assert chosen.abs().max() == 0 and rejected.abs().max() == 0
    wrong, _, _ = dpo_loss(*policy, *(t.detach() for t in noisy_a))
    assert (wrong - math.log(2.0)).abs().max() > 1e-4


# --------------------------------------------------------------------------------------
# The derivation on a table
# --------------------------------------------------------------------------------------


def _table(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.log_softmax(torch.randn(3, 5, generator=g, dtype=torch.float64), dim=-1)
    rewards = 2 * torch.rand(3, 5, generator=g, dtype=torch.float64)
    return ref, rewards


def test_optimal_policy_maximises_the_kl_regularised_objective() -> None:
    """Reference: L-BFGS on -(E_pi[r] - beta KL(pi || pi_ref)) over free logits (no
    closed form used), and pi_ref exp(r / beta) / Z written out in Python."""
    ref, rewards = _table()
    beta = 0.5
    log_star = optimal_policy(ref, rewards, beta=beta)
    theta = ref.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [theta],
        max_iter=500,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logp = torch.log_softmax(theta, dim=-1)
        loss = -(logp.exp() * (rewards - beta * (logp - ref))).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    torch.testing.assert_close(log_star.exp(), torch.softmax(theta.detach(), -1), atol=1e-6, rtol=0)
    x = 1
    weights = [math.exp(ref[x, y].item() + rewards[x, y].item() / beta) for y in range(5)]
    z = sum(weights)
    assert log_star[x].exp().tolist() == pytest.approx([w / z for w in weights], abs=1e-12)
    with pytest.raises(ValueError, match="beta must be > 0"):
        optimal_policy(ref, rewards, beta=0.0)
    with pytest.raises(ValueError, match="rewards has shape"):
        optimal_policy(ref, rewards[:, :4], beta=1.0)


def test_tabular_dpo_recovers_the_optimum_from_bradley_terry_pairs() -> None:
    """Reference: the closed-form optimum pi_ref exp(r / beta) / Z. Pairs are drawn from
    pi_ref and labelled by the Bradley-Terry model with the true reward; DPO on them
    converges to the optimum as pairs grow (KL shrinks), without ever seeing a reward."""
    ref, rewards = _table(1)
    beta = 0.5
    log_star = optimal_policy(ref, rewards, beta=beta)
    g = torch.Generator().manual_seed(0)
    kls = []
    for n in (2_000, 200_000):
        x = torch.randint(0, 3, (n,), generator=g)
        y1 = torch.multinomial(ref.exp()[x], 1, generator=g).squeeze(1)
        y2 = torch.multinomial(ref.exp()[x], 1, generator=g).squeeze(1)
        p_first = torch.sigmoid(rewards[x, y1] - rewards[x, y2])
        first_wins = torch.rand(n, generator=g, dtype=torch.float64) < p_first
        chosen, rejected = torch.where(first_wins, y1, y2), torch.where(first_wins, y2, y1)
        keep = chosen != rejected
        log_pi = fit_tabular_dpo(ref, x[keep], chosen[keep], rejected[keep], beta=beta)
        kls.append((log_star.exp() * (log_star - log_pi)).sum(-1).max().item())
    assert kls[1] < kls[0] / 10
    assert kls[1] < 1e-3


def test_fit_tabular_dpo_errors() -> None:
    ref, _ = _table()
    idx = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="prompts must be in"):
        fit_tabular_dpo(ref, torch.tensor([0, 3]), idx, idx, beta=1.0)
    with pytest.raises(ValueError, match="chosen must be in"):
        fit_tabular_dpo(ref, idx, torch.tensor([0, 5]), idx, beta=1.0)
    with pytest.raises(ValueError, match="need at least one pair"):
        empty = torch.zeros(0, dtype=torch.long)
        fit_tabular_dpo(ref, empty, empty, empty, beta=1.0)


# --------------------------------------------------------------------------------------
# The configuration and the trainer
# --------------------------------------------------------------------------------------


def test_config_defaults_and_validation() -> None:
    cfg = DPOConfig()
    assert (cfg.beta, cfg.loss_type, cfg.label_smoothing) == (0.1, "sigmoid", 0.0)
    assert not cfg.average_logps and DPOConfig(loss_type="ipo").average_logps
    assert DPOConfig(average=True).average_logps
    with pytest.raises(ValueError, match="must be 0 for loss_type='hinge'"):
        DPOConfig(loss_type="hinge", label_smoothing=0.1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        DPOConfig(lr=0)
    with pytest.raises(ValueError, match="num_generations must be an int >= 2"):
        DPOConfig(num_generations=1)
    with pytest.raises(TypeError, match="average must be None or a bool"):
        DPOConfig(average=1)
    with pytest.raises(AttributeError):
        cfg.beta = 0.2  # frozen


def test_trainer_logs_trl_metrics_and_keeps_the_reference_frozen() -> None:
    """Reference: at step 0 the policy is the reference, so the first loss is exactly log 2
    and the implicit rewards 0 (DPO's starting point); the reference never changes."""
    policy = tiny_model(8).train()
    problems = sample_problems(8, split="val")
    trainer = DPOTrainer(
        DPOConfig(lr=1e-3, batch_size=2),
        seed=0,
        pairs=PAIRS,
        eval_every=2,
        eval_problems=problems,
        eval_pairs=PAIRS[:2],
        policy=policy,
    )
    ref_state = {k: v.clone() for k, v in trainer.ref_model.state_dict().items()}
    log = trainer.train(3)
    first = log.steps[0]
    assert first["loss"] == pytest.approx(math.log(2.0), abs=1e-6)
    assert first["rewards/margins"] == 0.0 and first["rewards/accuracies"] == 0.0
    for key in ("rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected"):
        assert key in first
    assert [r["step"] for r in log.steps] == [1, 2, 3]
    assert [r["step"] for r in log.evals] == [0, 2, 3]
    assert log.evals[0]["kl"] == 0.0 and log.evals[-1]["kl"] > 0.0
    assert "eval_rewards/accuracies" in log.evals[-1]
    assert log.steps[-1]["time"] >= log.steps[0]["time"] > 0
    for key, value in trainer.ref_model.state_dict().items():
        assert torch.equal(value, ref_state[key])
    assert not any(p.requires_grad for p in trainer.ref_model.parameters())
    # the loss moved: the implicit reward now ranks at least one pair
    assert log.steps[-1]["rewards/margins"] != 0.0
    # every pair is seen once per epoch: 3 pairs, batches of 2
    trainer2 = DPOTrainer(
        DPOConfig(batch_size=2), seed=1, pairs=PAIRS, eval_problems=problems, policy=tiny_model()
    )
    seen = trainer2._next_indices() + trainer2._next_indices()
    assert len(seen) == 4 and sorted(seen[:3]) == [0, 1, 2]


def test_trainer_time_budget_and_errors() -> None:
    problems = sample_problems(4, split="val")
    trainer = DPOTrainer(
        DPOConfig(batch_size=2), seed=0, pairs=PAIRS, eval_problems=problems, policy=tiny_model()
    )
    log = trainer.train(50, time_budget_s=1e-9)
    assert log.steps == [] and len(log.evals) == 1
    with pytest.raises(TypeError, match="config must be a DPOConfig"):
        DPOTrainer({"beta": 0.1}, seed=0, pairs=PAIRS, policy=tiny_model())
    with pytest.raises(ValueError, match="must have a str 'chosen'"):
        DPOTrainer(DPOConfig(), seed=0, pairs=[{"prompt": "1"}], policy=tiny_model())
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        DPOTrainer(DPOConfig(), seed=-1, pairs=PAIRS, policy=tiny_model())
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        trainer.train(0)


def test_online_dpo_samples_new_pairs_from_the_current_policy() -> None:
    """Reference: counting by hand, 12 problems x 4 samples at the start and again at step 2
    and 4 (regenerate_every=2); pairs come from the shipped SFT policy's samples and each
    chosen completion is checked correct by the task's checker."""
    from tutorial_code.task import Problem, reward

    cfg = DPOConfig(
        lr=1e-5, batch_size=4, num_generations=4, online_problems=12, regenerate_every=2
    )
    problems = sample_problems(8, split="val")
    trainer = DPOTrainer(cfg, seed=0, online=True, eval_every=10, eval_problems=problems)
    first_pairs = trainer.pairs
    for pair in first_pairs:
        problem = Problem(int(pair["prompt"][:3]), int(pair["prompt"][4:7]))
        assert reward(problem, pair["chosen"]) == 1.0 and reward(problem, pair["rejected"]) == 0.0
    log = trainer.train(5)
    assert [r["samples"] for r in log.steps] == [48, 48, 96, 96, 144]
    assert trainer.pairs != first_pairs


def test_sample_pairs_drops_samples_that_wrote_the_padding_character(monkeypatch) -> None:
    """Reference: pairs chosen by hand from made-up samples. A wrong sample containing
    ``_`` cannot be tokenized back unambiguously, so the next wrong one is rejected."""
    from types import SimpleNamespace

    import tutorial_code.dpo as dpo
    from tutorial_code.task import Problem

    problems = [Problem(1, 2), Problem(4, 5)]
    completions = [["|3_1", "|4", "|3"], ["|9", "|9_"]]
    monkeypatch.setattr(
        dpo, "evaluate_sampling", lambda *a, **k: SimpleNamespace(completions=completions)
    )
    pairs = dpo.sample_pairs(tiny_model(), problems, num_generations=3)
    assert pairs == [{"prompt": "001+002=", "chosen": "|3", "rejected": "|4"}]
    preference_batch(pairs)  # tokenizes


# --------------------------------------------------------------------------------------
# The stored experiment (experiments/dpo.py) against a short re-run
# --------------------------------------------------------------------------------------


def _script():
    return load_script("experiments/dpo.py")


def test_stored_experiment_replays_its_first_steps() -> None:
    """Reference: experiments/results/dpo.json. The main configuration with seed 0, on the
    stored pairs: the evaluation before training (exact greedy accuracy, held-out pair
    log-probs) and TRL's metrics of the first five steps; and the pairs of the first 128
    training problems sampled again from the SFT checkpoint."""
    import json

    script = _script()
    stored = json.loads(script.DEFAULT_OUTPUT.read_text(encoding="utf-8"))
    main = stored["runs"]["main"]["seeds"]["0"]
    pairs = stored["pairs"]["0"]
    trainer = DPOTrainer(
        script.RUNS["main"].config, seed=0, pairs=pairs, eval_pairs=stored["eval_pairs"]
    )
    cfg = script.RUNS["main"].config
    problems = trainer.trainer.sample_problems(cfg.n_problems)[:128]  # at step 0, as the script
    first = trainer.evaluate()
    assert first["accuracy"] == main["evals"]["accuracy"][0]
    assert first["eval_logps/chosen"] == pytest.approx(
        main["evals"]["eval_logps/chosen"][0], abs=1e-3
    )
    rows = [trainer.train_step() for _ in range(5)]
    for key in ("loss", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert [r[key] for r in rows] == pytest.approx(main["steps"][key][:5], abs=2e-3), key

    again = sample_pairs(
        load_checkpoint("sft"),
        problems,
        num_generations=cfg.num_generations,
        generator=torch.Generator().manual_seed(0),
    )
    same = sum(a == b for a, b in zip(again, pairs))
    assert same >= 0.95 * len(again)


def test_train_dpo_starts_from_the_sft_checkpoint_and_returns_the_log() -> None:
    """Reference: the shipped SFT checkpoint's greedy accuracy on the same problems (the
    evaluation before the first step) and the step count asked for; a time budget stops it."""
    from tutorial_code.dpo import train_dpo
    from tutorial_code.rl import AlignmentLog, evaluate_greedy

    problems = sample_problems(16, split="val")
    log = train_dpo(DPOConfig(batch_size=2), seed=0, steps=2, pairs=PAIRS, eval_problems=problems)
    assert isinstance(log, AlignmentLog)
    assert [r["step"] for r in log.steps] == [1, 2]
    expected = evaluate_greedy(load_checkpoint("sft"), problems).accuracy
    assert log.evals[0]["accuracy"] == expected
    for key in ("accuracy", "kl", "length", "trace_fraction", "sample_length"):
        assert len(log.series(key, evals=True)) == 2
    short = train_dpo(
        DPOConfig(), seed=0, steps=5, pairs=PAIRS, eval_problems=problems, time_budget_s=1e-9
    )
    assert short.steps == []
