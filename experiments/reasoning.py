"""Reasoning models on the addition task: inference-time scaling and three training routes.

**(a) Inference-time scaling.** The SFT checkpoint and three GRPO policies trained from it with
chapter 9's baseline (``GRPOConfig()``, 60 steps, seeds 0-2) each sample ``--samples``
completions at temperature 1 for every test problem. From those samples the exact k-subset
estimators of :mod:`tutorial_code.reasoning` give, for k = 1 .. ``--samples // 2``: majority
vote (maj@k), best-of-k with the oracle checker (= pass@k) and best-of-k with two scorers that
need no extra model, the policy's mean and summed per-token log-probability of the completion.
Sampling and training compute are counted with :func:`tutorial_code.costs.generation_flops`
and :func:`tutorial_code.costs.forward_flops` (useful tokens only, no padding).

**(b) Training routes**, each with seeds 0-2 and evaluated on the same test problems (greedy
accuracy; pass@1 and maj@k from ``--route-samples`` samples):

* ``rl_from_base``: GRPO with the baseline settings from the shipped ``base`` checkpoint
  (pure RL, "R1-Zero style"); the base model cannot write the task's format, so almost every
  group has zero reward variance;
* ``rl_from_weak_start``: the same from a *weak start* built here: the ``base`` checkpoint
  after the first ``--weak-start-steps`` (100) steps of the shipped SFT run (the same recipe
  stopped early), which, like DeepSeek-V3-Base on maths, already solves a few problems before
  any RL. (A base pre-trained on task-like text, ``TASKLIKE_BASE``, is evaluated too: at this
  model size and budget it solves almost none, which is why the weak start is fine-tuned instead);
* ``sft_rl``: GRPO from the ``sft`` checkpoint (the policies of part a);
* ``distill``: the ``base`` checkpoint fine-tuned, with the SFT recipe's settings for
  ``--sft-steps`` steps, on one correct completion of the ``sft_rl`` policy (same seed) for
  each of the 1000 prompts of ``SFTRecipe(seed=seed)`` (rejection sampling: up to
  ``DISTILL_TRIES`` samples at temperature 1, prompts without a correct one are dropped);
* ``sft_original``: the same fine-tuning on the recipe's own completions (35 % with a trace),
  at the same budget; ``sft_trace``: on the same prompts with the program-written trace in
  every completion (a control: what a perfect teacher of the format gives).

**(c) Best-of-n by a reward model** (``--only-reward-model``, run after (a) and (b); it keeps
every stored number and adds the key ``reward_model_best_of_n``): chapter 7's reward model
(:func:`tutorial_code.ppo.train_reward_model` with the default ``RewardModelConfig``, as
``experiments/ppo.py`` trains it) scores the very samples of part (a), re-created with the
same seeds (the SFT samples; each GRPO seed re-trained and re-sampled), and the exact
estimator gives best-of-k by that score. The script asserts that the re-created samples'
correct counts, pass@k and maj@k equal the stored ones. Also stored: the reward model's
held-out pairwise accuracy (chapter 7's measurement) and, per policy, its mean score on right
and wrong samples and how often it ranks a right sample above a wrong one of the same problem.

One thread. Timings are recorded but the chapter quotes none. Everything else is deterministic
on one machine.

Usage::

    python experiments/reasoning.py            # writes experiments/results/reasoning.json
    python experiments/reasoning.py --only-reward-model   # adds part (c) to that file
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.checkpoints.recipes import (
    BASE_RECIPE,
    SFT_RECIPE,
    PretrainRecipe,
    SFTRecipe,
    finetune_sft,
    pretrain_base,
    recipe_dict,
    sft_examples,
)
from tutorial_code.costs import count_parameters, forward_flops, generation_flops
from tutorial_code.grpo import GRPOConfig, train_grpo
from tutorial_code.model import GPTModel
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.ppo import RewardModelConfig, score_texts, train_reward_model
from tutorial_code.reasoning import best_of_n_accuracy, maj_at_k
from tutorial_code.records import dumps, rounded
from tutorial_code.rl import (
    evaluate_greedy,
    generate_completions,
    masked_mean,
    pass_at_k,
)
from tutorial_code.task import (
    PROMPT_LENGTH,
    decode_completion,
    encode_prompts,
    parse_answer,
    reward,
    sample_problems,
    uses_trace,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "reasoning.json"

#: Seven significant digits (float32 carries about that many); NaN stored as null.
_round = functools.partial(rounded, nan_to_none=True)

GRPO = GRPOConfig()
#: A base pre-trained on task-like text: 30 % of the documents zero-padded to three digits,
#: 30 % with three-digit operands (the shipped base has 0 % of each).
TASKLIKE_BASE = PretrainRecipe(padded_fraction=0.3, three_digit_fraction=0.3)
#: Samples per prompt when collecting the distillation set.
DISTILL_TRIES = 4
#: Problems sampled together (``batch * samples`` rows per generate call).
BATCH = 100
#: Chapter 7's reward model (``experiments/ppo.py`` trains it with the default config).
RM_CONFIG = RewardModelConfig()
#: SFT samples of this many test problems keep their reward-model scores in the JSON.
RM_STORED_PROBLEMS = 4


def sample_policy(policy: GPTModel, problems: list, *, n: int, seed: int) -> dict:
    """``n`` samples at temperature 1 for each problem, ``BATCH`` problems per call, one
    seeded generator for all calls (so the first ``BATCH`` problems' samples do not depend on
    how many problems follow). Returns per-problem lists: correct flags, parsed answers, mean
    and summed per-token log-probs, lengths, trace flags and the completion texts."""
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, list] = {k: [] for k in ("correct", "answers", "mean_lp", "sum_lp", "lengths")}
    out["trace"], out["texts"] = [], []
    for start in range(0, len(problems), BATCH):
        chunk = problems[start : start + BATCH]
        gen = generate_completions(
            policy, encode_prompts(chunk), num_generations=n, generator=generator
        )
        mask = gen.completion_mask.to(gen.logprobs.dtype)
        mean_lp = masked_mean(gen.logprobs, mask, dim=1).view(len(chunk), n)
        sum_lp = (gen.logprobs * mask).sum(dim=1).view(len(chunk), n)
        lengths = gen.completion_mask.sum(dim=1).view(len(chunk), n)
        texts = [decode_completion(row) for row in gen.completion_ids]
        for i, problem in enumerate(chunk):
            group = texts[i * n : (i + 1) * n]
            out["correct"].append([reward(problem, t) == 1.0 for t in group])
            out["answers"].append([parse_answer(t) for t in group])
            out["trace"].append([uses_trace(t) for t in group])
            out["texts"].append(group)
            out["mean_lp"].append(mean_lp[i].tolist())
            out["sum_lp"].append(sum_lp[i].tolist())
            out["lengths"].append(lengths[i].tolist())
    return out


def scaling_curves(problems: list, samples: dict, ks: list[int]) -> dict:
    """maj@k, pass@k (oracle best-of-k) and best-of-k by mean / summed log-prob, for each k,
    averaged over problems (exact k-subset estimators)."""
    correct = torch.tensor(samples["correct"])
    n = correct.shape[1]
    counts = correct.sum(dim=1).tolist()
    curves: dict[str, list] = {
        "k": ks,
        "maj": [],
        "pass": [],
        "best_mean_lp": [],
        "best_sum_lp": [],
    }
    mean_lp = torch.tensor(samples["mean_lp"], dtype=torch.float64)
    sum_lp = torch.tensor(samples["sum_lp"], dtype=torch.float64)
    for k in ks:
        maj = [maj_at_k(a, p.answer, k) for p, a in zip(problems, samples["answers"])]
        curves["maj"].append(sum(maj) / len(maj))
        curves["pass"].append(sum(pass_at_k(n, int(c), k) for c in counts) / len(counts))
        curves["best_mean_lp"].append(best_of_n_accuracy(mean_lp, correct, k).mean().item())
        curves["best_sum_lp"].append(best_of_n_accuracy(sum_lp, correct, k).mean().item())
    return {
        key: [_round(v) if isinstance(v, float) else v for v in vals]
        for key, vals in curves.items()
    }


def evaluate(policy: GPTModel, problems: list, *, n: int, seed: int, ks: list[int]) -> dict:
    """Greedy accuracy, sampled statistics and the scaling curves of ``policy``."""
    greedy = evaluate_greedy(policy, problems)
    samples = sample_policy(policy, problems, n=n, seed=seed)
    correct = torch.tensor(samples["correct"])
    lengths = torch.tensor(samples["lengths"], dtype=torch.float64)
    right_lengths = lengths[correct]
    return {
        "greedy_accuracy": greedy.accuracy,
        "greedy_trace_fraction": greedy.trace_fraction,
        "greedy_length": _round(greedy.mean_length),
        "samples": n,
        "sampling_seed": seed,
        "pass@1": _round(correct.double().mean().item()),
        "sampled_trace_fraction": _round(torch.tensor(samples["trace"]).double().mean().item()),
        "sampled_length": _round(lengths.mean().item()),
        "sampled_length_right": _round(right_lengths.mean().item()) if len(right_lengths) else None,
        "unparsed_fraction": _round(
            sum(a is None for row in samples["answers"] for a in row) / correct.numel()
        ),
        "sample_flops": generation_flops(
            policy.cfg,
            prompt_length=PROMPT_LENGTH,
            completion_length=max(1, round(lengths.mean().item())),
        ),
        "correct_counts": correct.sum(dim=1).tolist(),
        "curves": scaling_curves(problems, samples, ks),
    }


def score_samples(rm, problems: list, samples: dict) -> torch.Tensor:
    """Reward-model scores ``(P, n)`` of the samples of :func:`sample_policy`."""
    n = len(samples["texts"][0])
    prompts = [p.prompt for p in problems for _ in range(n)]
    texts = [t for group in samples["texts"] for t in group]
    return score_texts(rm, prompts, texts).view(len(problems), n)


def reward_model_summary(scores: torch.Tensor, samples: dict, ks: list[int]) -> dict:
    """Best-of-k by ``scores`` (exact estimator) for each k, the mean score of right and wrong
    samples, and the fraction of (right, wrong) sample pairs of the same problem in which the
    right one scores higher (ties count one half)."""
    correct = torch.tensor(samples["correct"])
    scores = scores.double()
    wins = pairs = 0.0
    for row, right in zip(scores, correct):
        diff = row[right][:, None] - row[~right][None, :]
        wins += (diff > 0).sum().item() + 0.5 * (diff == 0).sum().item()
        pairs += diff.numel()
    return {
        "best_rm": [_round(best_of_n_accuracy(scores, correct, k).mean().item()) for k in ks],
        "mean_score": _round(scores.mean().item()),
        "mean_score_right": _round(scores[correct].mean().item()) if correct.any() else None,
        "mean_score_wrong": _round(scores[~correct].mean().item()) if not correct.all() else None,
        "same_problem_pairs": int(pairs),
        "same_problem_pair_accuracy": _round(wins / pairs) if pairs else None,
    }


def check_reproduced(stored: dict, problems: list, samples: dict, ks: list[int]) -> None:
    """Assert that re-created samples are the stored run's: same correct counts, pass@k, maj@k."""
    counts = [sum(row) for row in samples["correct"]]
    if counts != stored["correct_counts"]:
        same = sum(a == b for a, b in zip(counts, stored["correct_counts"]))
        raise AssertionError(f"correct counts differ on {len(counts) - same} problems")
    curves = scaling_curves(problems, samples, ks)
    for key in ("pass", "maj"):
        if curves[key] != stored["curves"][key]:
            raise AssertionError(f"{key} curve differs: {curves[key]} != {stored['curves'][key]}")


def held_out_reward_model_accuracy(rm) -> dict:
    """Chapter 7's measurement of the reward model (``experiments/ppo.py``'s function)."""
    spec = importlib.util.spec_from_file_location(
        "ppo_experiment", Path(__file__).parent / "ppo.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.evaluate_reward_model(rm)
    keys = ("held_out_problems", "held_out_pairs", "held_out_accuracy", "correlation_with_checker")
    return {k: _round(out[k]) if isinstance(out[k], float) else out[k] for k in keys}


def reward_model_best_of_n(results: dict, command: str) -> dict:
    """Part (c): best-of-k by chapter 7's reward model on part (a)'s samples, re-created."""
    started = time.perf_counter()

    def note(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    if results["grpo_config"] != GRPO.to_dict():
        raise ValueError("the stored run used another GRPO config")
    test = sample_problems(results["test_problems"], split="test")
    n, steps = results["samples"], results["grpo_steps"]
    ks = results["sft"]["curves"]["k"]
    policies = [("sft", None, results["sft"])] + [
        ("sft_rl", r["seed"], r["final"]) for r in results["routes"]["sft_rl"]
    ]
    samples, seconds = {}, {}
    for name, seed, stored in policies:
        began = time.perf_counter()
        if seed is None:
            policy = load_checkpoint("sft")
        else:
            policy, _ = grpo_run(load_checkpoint("sft"), seed, steps)
        samples[name, seed] = sample_policy(policy, test, n=n, seed=stored["sampling_seed"])
        check_reproduced(stored, test, samples[name, seed], ks)
        seconds[f"{name}_{seed}"] = time.perf_counter() - began
        note(f"{name} seed {seed}: samples reproduced ({seconds[f'{name}_{seed}']:.0f} s)")
    began = time.perf_counter()
    rm, record = train_reward_model(RM_CONFIG)
    seconds["train_reward_model"] = time.perf_counter() - began
    held_out = held_out_reward_model_accuracy(rm)
    note(f"reward model: held-out pair accuracy {held_out['held_out_accuracy']:.4f}")
    out: dict = {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "machine": {"summary": machine_summary(), "cpu": cpu_model()},
        "threads": torch.get_num_threads(),
        "reward_model_config": dataclasses.asdict(RM_CONFIG),
        "reward_model_pairs": record["pairs"],
        "reward_model_normalisation": {k: _round(v) for k, v in record["normalisation"].items()},
        **held_out,
        "k": ks,
        "stored_problems": RM_STORED_PROBLEMS,
        "sft_rl": [],
    }
    for name, seed, _ in policies:
        began = time.perf_counter()
        scores = score_samples(rm, test, samples[name, seed])
        entry = reward_model_summary(scores, samples[name, seed], ks)
        if seed is None:
            first = scores[:RM_STORED_PROBLEMS]
            entry["first_scores"] = [[_round(v) for v in row] for row in first.tolist()]
            out["sft"] = entry
        else:
            out["sft_rl"].append({"seed": seed, **entry})
        seconds[f"score_{name}_{seed}"] = time.perf_counter() - began
        note(f"{name} seed {seed}: best-of-{ks[-1]} by the reward model {entry['best_rm'][-1]:.4f}")
    out["seconds"] = seconds
    out["total_seconds"] = time.perf_counter() - started
    return out


def grpo_run(start: GPTModel, seed: int, steps: int) -> tuple[GPTModel, dict]:
    """Chapter 9's baseline GRPO from ``start`` (trained in place); the per-step log."""
    began = time.perf_counter()
    log = train_grpo(GRPO, seed=seed, steps=steps, start=start)
    keys = ("reward", "frac_reward_zero_std", "length", "trace_fraction", "kl", "loss")
    record = {k: [_round(row[k]) for row in log.steps] for k in keys}
    record["samples"] = [int(row["samples"]) for row in log.steps]
    record["evals"] = {
        "step": [row["step"] for row in log.evals],
        "accuracy": [_round(row["accuracy"]) for row in log.evals],
    }
    record["wall_seconds"] = time.perf_counter() - began
    return start, record


def grpo_training_flops(record: dict, cfg) -> float:
    """Compute of one GRPO run from its log: per completion, sampling (KV cache) plus five
    full-sequence forward passes (old policy 1, reference 1, the update's forward + backward
    3), at each step's mean completion length. Evaluations are not counted."""
    total = 0.0
    for samples, length in zip(record["samples"], record["length"]):
        tokens = max(1, round(length))
        seq = PROMPT_LENGTH + tokens
        per_row = generation_flops(cfg, prompt_length=PROMPT_LENGTH, completion_length=tokens)
        per_row += 5 * forward_flops(cfg, num_new=seq)
        total += samples * per_row
    return total


def finetune(
    model: GPTModel, prompts: list[str], completions: list[str], *, steps: int, seed: int
) -> list[float]:
    """The SFT recipe (``SFTRecipe(seed=seed)``: AdamW, constant LR, completion-only loss,
    batch order seeded by ``seed``) on any prompt/completion pairs; the per-step losses."""
    recipe = SFTRecipe(seed=seed)
    log = finetune_sft(model, recipe, steps=steps, examples=(prompts, completions))
    return list(log.losses)


def distillation_set(teacher: GPTModel, seed: int) -> tuple[list[str], list[str], dict]:
    """One correct teacher completion per prompt of ``SFTRecipe(seed=seed)`` (rejection
    sampling, up to ``DISTILL_TRIES`` samples at temperature 1)."""
    recipe = SFTRecipe(seed=seed)
    problems = sample_problems(recipe.n_examples, split="train", seed=recipe.seed)
    gen = generate_completions(
        teacher,
        encode_prompts(problems),
        num_generations=DISTILL_TRIES,
        generator=torch.Generator().manual_seed(5000 + seed),
    )
    texts = [decode_completion(row) for row in gen.completion_ids]
    prompts, completions = [], []
    for i, problem in enumerate(problems):
        group = texts[i * DISTILL_TRIES : (i + 1) * DISTILL_TRIES]
        right = [t for t in group if reward(problem, t) == 1.0]
        if right:
            prompts.append(problem.prompt)
            completions.append(right[0])
    stats = {
        "prompts": len(problems),
        "kept": len(prompts),
        "trace_fraction": sum(uses_trace(c) for c in completions) / max(1, len(completions)),
    }
    return prompts, completions, stats


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--grpo-steps", type=int, default=60)
    parser.add_argument("--sft-steps", type=int, default=500)
    parser.add_argument("--test-problems", type=int, default=500)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--route-samples", type=int, default=16)
    parser.add_argument("--weak-start-steps", type=int, default=100)
    parser.add_argument("--pretrain-steps", type=int, default=TASKLIKE_BASE.steps)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--only-reward-model",
        action="store_true",
        help="read the stored results and add best-of-n by chapter 7's reward model",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    command = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
    if args.only_reward_model:
        results = json.loads(args.output.read_text(encoding="utf-8"))
        results["reward_model_best_of_n"] = reward_model_best_of_n(results, command)
        args.output.write_text(dumps(results), encoding="utf-8")
        return results
    started = time.perf_counter()
    test = sample_problems(args.test_problems, split="test")
    ks = list(range(1, args.samples // 2 + 1))
    route_ks = list(range(1, args.route_samples // 2 + 1))
    results: dict = {
        "command": command,
        "date": datetime.date.today().isoformat(),
        "machine": {"summary": machine_summary(), "cpu": cpu_model()},
        "threads": torch.get_num_threads(),
        "seeds": args.seeds,
        "grpo_steps": args.grpo_steps,
        "sft_steps": args.sft_steps,
        "weak_start_steps": args.weak_start_steps,
        "pretrain_steps": args.pretrain_steps,
        "test_problems": args.test_problems,
        "samples": args.samples,
        "route_samples": args.route_samples,
        "temperature": 1.0,
        "grpo_config": GRPO.to_dict(),
        "tasklike_base_recipe": recipe_dict(TASKLIKE_BASE),
        "base_recipe": recipe_dict(BASE_RECIPE),
        "sft_recipe": recipe_dict(SFT_RECIPE),
        "distill_tries": DISTILL_TRIES,
    }

    def note(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    # (a) the SFT checkpoint and the SFT + RL policies, with many samples.
    sft = load_checkpoint("sft")
    results["parameters"] = count_parameters(sft)
    results["sft"] = evaluate(sft, test, n=args.samples, seed=1000, ks=ks)
    note(f"sft: maj@{ks[-1]} {results['sft']['curves']['maj'][-1]:.3f}")
    teachers = {}
    results["routes"] = {
        name: []
        for name in (
            "rl_from_base",
            "rl_from_weak_start",
            "sft_rl",
            "distill",
            "sft_original",
            "sft_trace",
        )
    }
    for seed in args.seeds:
        policy, log = grpo_run(load_checkpoint("sft"), seed, args.grpo_steps)
        record = {"seed": seed, "log": log}
        record["final"] = evaluate(policy, test, n=args.samples, seed=1000 + seed, ks=ks)
        results["routes"]["sft_rl"].append(record)
        teachers[seed] = policy
        note(f"sft_rl seed {seed}: greedy {record['final']['greedy_accuracy']:.3f}")

    # (b) pure RL from the shipped base and from the weak start.
    base = load_checkpoint("base")
    results["base"] = evaluate(base, test, n=args.route_samples, seed=1000, ks=route_ks)
    weak = load_checkpoint("base")
    finetune_sft(weak, steps=args.weak_start_steps)
    weak_state = {k: v.clone() for k, v in weak.state_dict().items()}
    results["weak_start"] = evaluate(weak, test, n=args.route_samples, seed=1000, ks=route_ks)
    note(f"weak start: pass@1 {results['weak_start']['pass@1']:.3f}")
    for seed in args.seeds:
        for name in ("rl_from_base", "rl_from_weak_start"):
            start = load_checkpoint("base")
            if name == "rl_from_weak_start":
                start.load_state_dict(weak_state)
            policy, log = grpo_run(start, seed, args.grpo_steps)
            record = {"seed": seed, "log": log}
            record["final"] = evaluate(
                policy, test, n=args.route_samples, seed=1000 + seed, ks=route_ks
            )
            results["routes"][name].append(record)
            note(f"{name} seed {seed}: greedy {record['final']['greedy_accuracy']:.3f}")

    # (b) distillation against fine-tuning on the original data at the same budget.
    for seed in args.seeds:
        recipe = SFTRecipe(seed=seed)
        prompts, completions = sft_examples(recipe)
        problems = sample_problems(recipe.n_examples, split="train", seed=recipe.seed)
        traced = [p.completion(trace=True) for p in problems]
        d_prompts, d_completions, d_stats = distillation_set(teachers[seed], seed)
        for name, (xs, ys) in (
            ("distill", (d_prompts, d_completions)),
            ("sft_original", (prompts, completions)),
            ("sft_trace", ([p.prompt for p in problems], traced)),
        ):
            student = load_checkpoint("base")
            began = time.perf_counter()
            losses = finetune(student, xs, ys, steps=args.sft_steps, seed=seed)
            record = {
                "seed": seed,
                "examples": len(xs),
                "example_trace_fraction": sum(uses_trace(y) for y in ys) / len(ys),
                "losses": [_round(v) for v in losses],
                "wall_seconds": time.perf_counter() - began,
            }
            if name == "distill":
                record["distillation_set"] = d_stats
            record["final"] = evaluate(
                student, test, n=args.route_samples, seed=1000 + seed, ks=route_ks
            )
            results["routes"][name].append(record)
            note(f"{name} seed {seed}: greedy {record['final']['greedy_accuracy']:.3f}")

    # A base pre-trained on task-like text (evaluated only).
    began = time.perf_counter()
    tasklike, _ = pretrain_base(TASKLIKE_BASE, steps=args.pretrain_steps)
    results["tasklike_base_pretrain_seconds"] = time.perf_counter() - began
    results["tasklike_base"] = evaluate(
        tasklike, test, n=args.route_samples, seed=1000, ks=route_ks
    )
    note(f"task-like base: pass@1 {results['tasklike_base']['pass@1']:.3f}")

    # Compute: sampling at test time against GRPO's training.
    model_cfg = sft.cfg
    results["compute"] = {
        "greedy_sample_flops_sft": generation_flops(
            model_cfg,
            prompt_length=PROMPT_LENGTH,
            completion_length=max(1, round(results["sft"]["sampled_length"])),
        ),
        "grpo_training_flops": [
            grpo_training_flops(r["log"], model_cfg) for r in results["routes"]["sft_rl"]
        ],
        "note": "useful tokens only, at the mean sampled completion length; 2 FLOPs per MAC",
    }
    results["total_seconds"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(dumps(results), encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
