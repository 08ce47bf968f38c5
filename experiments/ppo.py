"""RLHF with PPO on the alignment testbed: the reward model, PPO runs, reward hacking, ablations.

1. ``rm``: train the reward model (``tutorial_code.ppo.train_reward_model`` with
   its default ``RewardModelConfig``) on preference pairs sampled from the SFT policy; then,
   on ``N_VAL`` validation problems with 4 SFT samples each, its pairwise accuracy on the
   held-out pairs, the correlation of its score with the checker's reward, and its mean
   score split by (writes a trace, is right).
2. PPO from the SFT checkpoint (``tutorial_code.ppo.PPOTrainer``), ``--seeds`` seeds each:

   * ``checker``: the default ``PPOConfig``, rewarded by the task's checker;
   * ``reward_model``: the same, rewarded by the learned reward model;
   * ``reward_model_fixed_kl``: fixed ``kl_coef = 0.05`` (TRL's default) instead of the
     adaptive controller; ``reward_model_no_kl``: no KL penalty at all (reward hacking);
   * ablations with the checker: ``no_whitening``, ``no_value_clipping``, ``k3``.

   Each run records its whole log (every step, and a greedy evaluation on 200 validation
   problems every ``EVAL_EVERY`` steps) and a final evaluation on ``N_TEST`` test problems:
   greedy accuracy, trace use, length, the reward model's score of the greedy completions,
   and, from one sample per problem at temperature 1, its accuracy and the exact KL to the
   reference per token and per sequence. The SFT policy gets the same final evaluation.

Everything runs on one CPU thread with fixed seeds. Results, with the command, the machine,
the date and every raw number, go to ``experiments/results/ppo.json``, which chapter 7 reads.

Usage::

    python experiments/ppo.py                        # everything (rewrites the JSON)
    python experiments/ppo.py --only checker k3      # re-run some runs, keep the others
    python experiments/ppo.py --only rm              # only the reward model's section
    python experiments/ppo.py --only checker --seeds 0 --steps 2 --output /tmp/ppo.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import time
from pathlib import Path

import torch

from tutorial_code.checkpoints import load_checkpoint
from tutorial_code.notebook import cpu_model, machine_summary
from tutorial_code.ppo import (
    PPOConfig,
    PPOTrainer,
    RewardModel,
    RewardModelConfig,
    score_texts,
    train_reward_model,
)
from tutorial_code.records import rounded
from tutorial_code.rl import (
    evaluate_greedy,
    evaluate_sampling,
    generate_completions,
    kl_to_reference,
)
from tutorial_code.task import (
    decode_completion,
    encode_prompts,
    preference_pairs,
    reward,
    sample_problems,
    uses_trace,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "experiments" / "results" / "ppo.json"
N_VAL, N_TEST = 500, 500
EVAL_EVERY = 5
#: name -> (changes to the default PPOConfig, reward, steps)
RUNS: dict[str, tuple[dict, str, int]] = {
    "checker": ({}, "checker", 30),
    "reward_model": ({}, "reward_model", 40),
    "reward_model_fixed_kl": ({"adaptive_kl": False}, "reward_model", 40),
    "reward_model_no_kl": ({"adaptive_kl": False, "kl_coef": 0.0}, "reward_model", 40),
    "no_whitening": ({"whiten_advantages": False}, "checker", 30),
    "no_value_clipping": ({"cliprange_value": None}, "checker", 30),
    "k3": ({"kl_estimator": "k3"}, "checker", 30),
}
#: ``--only`` choices: ``rm`` (train and measure the reward model) and the runs.
SECTIONS = ("rm", *RUNS)


def evaluate_reward_model(rm: RewardModel, seed: int = 1) -> dict:
    """Held-out pairwise accuracy, correlation with the checker, score by (trace, right)."""
    sft = load_checkpoint("sft")
    problems = sample_problems(N_VAL, split="val")
    samples = evaluate_sampling(
        sft, problems, n=4, generator=torch.Generator().manual_seed(seed)
    ).completions
    pairs = preference_pairs(problems, samples)
    chosen = score_texts(rm, [p["prompt"] for p in pairs], [p["chosen"] for p in pairs])
    rejected = score_texts(rm, [p["prompt"] for p in pairs], [p["rejected"] for p in pairs])
    flat = [(p, c) for p, group in zip(problems, samples) for c in group]
    scores = score_texts(rm, [p.prompt for p, _ in flat], [c for _, c in flat])
    right = torch.tensor([reward(p, c) for p, c in flat])
    trace = torch.tensor([uses_trace(c) for _, c in flat])
    groups = {}
    for has_trace in (True, False):
        for is_right in (True, False):
            sel = (trace == has_trace) & ((right == 1.0) == is_right)
            groups[f"{'trace' if has_trace else 'direct'}_{'right' if is_right else 'wrong'}"] = {
                "n": int(sel.sum()),
                "mean_score": scores[sel].double().mean().item(),
            }
    return {
        "held_out_problems": N_VAL,
        "held_out_pairs": len(pairs),
        "held_out_accuracy": (chosen > rejected).double().mean().item(),
        "held_out_margin": (chosen - rejected).double().mean().item(),
        "samples": len(flat),
        "correlation_with_checker": torch.corrcoef(torch.stack([scores, right]))[0, 1].item(),
        "by_group": groups,
    }


@torch.no_grad()
def final_evaluation(policy, ref_model, rm: RewardModel | None, *, seed: int) -> dict:
    """Greedy and one-sample evaluation of a policy on the test problems."""
    problems = sample_problems(N_TEST, split="test")
    greedy = evaluate_greedy(policy, problems)
    out = generate_completions(
        policy, encode_prompts(problems), generator=torch.Generator().manual_seed(seed)
    )
    texts = [decode_completion(row) for row in out.completion_ids]
    kl_token = kl_to_reference(
        policy, ref_model, out.sequences, out.completion_mask, attention_mask=out.attention_mask
    )
    length = out.completion_mask.sum(dim=1).double().mean().item()
    result = {
        "accuracy": greedy.accuracy,
        "trace_fraction": greedy.trace_fraction,
        "length": greedy.mean_length,
        "sampled_accuracy": sum(reward(p, t) for p, t in zip(problems, texts)) / len(problems),
        "sampled_length": length,
        "kl": kl_token,
        "kl_sequence": kl_token * length,
        "examples": [p.prompt + c for p, c in zip(problems[:8], greedy.completions[:8])],
    }
    if rm is not None:
        prompts = [p.prompt for p in problems]
        result["rm_score"] = score_texts(rm, prompts, greedy.completions).double().mean().item()
    return result


def run(name: str, seed: int, rm: RewardModel | None, steps: int | None) -> dict:
    changes, reward_name, default_steps = RUNS[name]
    config = PPOConfig().replace(**changes)
    trainer = PPOTrainer(
        config,
        seed=seed,
        reward=reward_name,
        reward_model=rm if reward_name == "reward_model" else None,
        eval_every=EVAL_EVERY,
    )
    start = time.perf_counter()
    log = trainer.train(default_steps if steps is None else steps)
    seconds = time.perf_counter() - start
    final = final_evaluation(trainer.policy, trainer.ref_model, rm, seed=seed)
    print(
        f"{name} seed {seed}: test accuracy {final['accuracy']:.3f}, "
        f"KL/seq {final['kl_sequence']:.2f}, {seconds:.0f} s",
        flush=True,
    )
    return {
        "steps": log.steps,
        "evals": log.evals,
        "final": final,
        "train_seconds": trainer.train_seconds,
        "wall_seconds": seconds,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None, help="override every run's steps")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results = json.loads(args.output.read_text(encoding="utf-8")) if args.output.exists() else {}
    results.update(
        {
            "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
            "date": datetime.date.today().isoformat(),
            "machine": {"summary": machine_summary(), "cpu": cpu_model()},
            "threads": torch.get_num_threads(),
            "ppo_config": dataclasses.asdict(PPOConfig()),
            "reward_model_config": dataclasses.asdict(RewardModelConfig()),
            "eval_every": EVAL_EVERY,
            "n_test": N_TEST,
        }
    )
    results.setdefault("runs", {})
    needs_rm = "rm" in args.only or any(
        RUNS[name][1] == "reward_model" for name in args.only if name in RUNS
    )
    rm = None
    if needs_rm:
        start = time.perf_counter()
        rm, record = train_reward_model(RewardModelConfig())
        seconds = time.perf_counter() - start
        if "rm" in args.only:
            results["reward_model"] = {
                "training": record,
                "train_seconds": seconds,
                **evaluate_reward_model(rm),
            }
            print(
                f"reward model: {record['pairs']} pairs, held-out accuracy "
                f"{results['reward_model']['held_out_accuracy']:.3f}, {seconds:.0f} s",
                flush=True,
            )
    if "rm" in args.only or "sft" not in results:
        sft = load_checkpoint("sft")
        results["sft"] = final_evaluation(sft, sft, rm, seed=0)
    for name in args.only:
        if name not in RUNS:
            continue
        changes, reward_name, default_steps = RUNS[name]
        results["runs"][name] = {
            "changes": dict(changes),
            "reward": reward_name,
            "steps": default_steps if args.steps is None else args.steps,
            "seeds": {str(seed): run(name, seed, rm, args.steps) for seed in args.seeds},
        }
    results = rounded(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return results


if __name__ == "__main__":
    main()
