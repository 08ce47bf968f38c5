"""The alignment testbed's task: three-digit addition with an optional worked trace.

Chapters 7-10 (PPO, DPO, GRPO, DAPO) all improve the same policy on the same task, so that a
reader can see what each method changes. The task is chosen so that

* the answer is **checked by a program** (:func:`reward`), so "accuracy" is the truth;
* completions have **variable length**: a completion either answers directly (``|332``) or
  first writes a short **worked trace** of the column additions, right to left, with the
  carries made explicit (``7+5=12,4+8+1=13,0+2+1=3|332``); 5 tokens against about 28;
* prompts and answers are digits and symbols only, so every language runs identical code.

**Template.** A prompt is two zero-padded operands and ``=`` (``047+285=``; every prompt has
:data:`PROMPT_LENGTH` tokens, so a batch of prompts needs no padding). The completion is
``[trace]|answer`` followed by the end-of-sequence token :data:`EOS` (``.``). The ``|``
separates the working from the answer, like the ``</think>`` tag of reasoning models; the
checker reads only what follows the last ``|``. This is the book's "chat template": the prompt
is the user's turn, the completion the assistant's, and ``EOS`` ends the turn.

**Splits.** Whether a problem belongs to the train, validation or test split is a fixed
function of the problem (:func:`split_of`: a hash of the unordered pair of operands), so the
splits never overlap, ``a+b`` and ``b+a`` always fall in the same split, and any number of
training problems can be drawn (:func:`sample_problems`) without touching the held-out ones.

**Pre-training text.** :func:`pretraining_text` is the base model's corpus: documents of
one- and two-digit sums in the same notation, without zero padding and without the
prompt/completion split, separated by ``EOS`` as GPT-2 separates documents by
``<|endoftext|>``. It teaches digits, column sums and the notation, not the task.

**Preference pairs** follow TRL's explicit-prompt format ``{"prompt", "chosen",
"rejected"}``; :func:`hh_to_explicit_prompt` converts Anthropic's HH-RLHF layout, where
``chosen`` and ``rejected`` are whole dialogues with the prompt inside.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from tutorial_code.checks import check_choice, check_float, check_int, check_tensor
from tutorial_code.data import CharTokenizer

__all__ = [
    "ANSWER_SEP",
    "EOS",
    "EOS_ID",
    "MAX_COMPLETION_LENGTH",
    "PAD",
    "PAD_ID",
    "PROMPT_LENGTH",
    "SPLITS",
    "TOKENIZER",
    "VOCAB",
    "Problem",
    "decode_completion",
    "encode_prompts",
    "explicit_prompt_to_hh",
    "hh_to_explicit_prompt",
    "parse_answer",
    "preference_pairs",
    "pretraining_text",
    "reward",
    "sample_problems",
    "sft_batch",
    "split_of",
    "uses_trace",
]

#: Padding (never a target of the loss) and end of sequence (ends a completion or a document).
PAD, EOS = "_", "."
#: Separates the optional trace from the answer.
ANSWER_SEP = "|"
#: Every character the task uses; the id of a character is its index here.
VOCAB = PAD + EOS + "0123456789+=," + ANSWER_SEP
#: The task's character-level tokenizer (16 ids).
TOKENIZER = CharTokenizer(list(VOCAB))
PAD_ID, EOS_ID = TOKENIZER.encode(PAD)[0], TOKENIZER.encode(EOS)[0]
#: Tokens in every prompt: ``abc+def=``.
PROMPT_LENGTH = 8
#: The longest correct completion with its EOS: ``9+9=18,9+9+1=19,9+9+1=19|1998.``
MAX_COMPLETION_LENGTH = 30

SPLITS = ("train", "val", "test")
Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class Problem:
    """One addition problem ``a + b`` with ``0 <= a, b <= 999``."""

    a: int
    b: int

    def __post_init__(self) -> None:
        check_int("a", self.a, low=0, high=999)
        check_int("b", self.b, low=0, high=999)

    @property
    def answer(self) -> int:
        return self.a + self.b

    @property
    def prompt(self) -> str:
        """``"047+285="``: the zero-padded operands; always :data:`PROMPT_LENGTH` characters."""
        return f"{self.a:03d}+{self.b:03d}="

    @property
    def trace(self) -> str:
        """The column additions, right to left: ``"7+5=12,4+8+1=13,0+2+1=3"``.

        Each step adds the two digits of a column and the carry of the step before
        (written ``+1`` only when there is one); the result's last digit is the answer's digit
        in that column and its first (if two digits) is the carry into the next column.
        """
        return _trace(self.a, self.b, 3)

    def completion(self, *, trace: bool) -> str:
        """The reference completion without EOS: ``"<trace>|332"`` or ``"|332"``."""
        return (self.trace if trace else "") + ANSWER_SEP + str(self.answer)


def _trace(a: int, b: int, columns: int) -> str:
    steps, carry = [], 0
    for i in range(columns):
        da, db = a // 10**i % 10, b // 10**i % 10
        total = da + db + carry
        steps.append(f"{da}+{db}" + ("+1" if carry else "") + f"={total}")
        carry = total // 10
    return ",".join(steps)


# --------------------------------------------------------------------------------------
# Splits and problem generation
# --------------------------------------------------------------------------------------


def split_of(a: int, b: int) -> Split:
    """The split of ``a + b``: ``"test"`` (5%), ``"val"`` (5%) or ``"train"`` (90%).

    A fixed hash (BLAKE2b) of the unordered pair, so ``a+b`` and ``b+a`` share a split and
    the assignment is the same on every machine and Python version.
    """
    check_int("a", a, low=0, high=999)
    check_int("b", b, low=0, high=999)
    key = f"{min(a, b)}+{max(a, b)}".encode()
    bucket = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % 20
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def sample_problems(
    n: int, *, split: Split = "train", seed: int = 0, max_operand: int = 999, unique: bool = True
) -> list[Problem]:
    """Draw ``n`` problems of ``split`` with operands uniform in ``[0, max_operand]``.

    Deterministic in ``(n, split, seed, max_operand, unique)``: the same arguments give the
    same list on every machine (Python's ``random.Random`` seeded with a string). With
    ``unique=True`` no problem repeats (``a+b`` and ``b+a`` count as different problems).
    """
    check_int("n", n, low=0)
    check_choice("split", split, SPLITS)
    check_int("seed", seed)
    check_int("max_operand", max_operand, low=1, high=999)
    rng = random.Random(f"{split}/{seed}/{max_operand}")
    problems: list[Problem] = []
    seen: set[tuple[int, int]] = set()
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(
                f"could not draw {n} unique problems of split {split!r} with operands up to "
                f"{max_operand}; ask for fewer"
            )
        a, b = rng.randint(0, max_operand), rng.randint(0, max_operand)
        if split_of(a, b) != split or (unique and (a, b) in seen):
            continue
        seen.add((a, b))
        problems.append(Problem(a, b))
    return problems


# --------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------

_ANSWER = re.compile(r"0|[1-9][0-9]{0,3}")


def parse_answer(completion: str) -> int | None:
    """The integer after the last ``|`` of ``completion``, or ``None`` if there is none.

    ``completion`` is the generated text, with or without its EOS (text after the first EOS
    is ignored). The answer must be a plain decimal number of at most four digits without
    leading zeros; anything else (no ``|``, an empty answer, ``0332``, stray symbols) is
    ``None``. The trace is not checked: the reward is for the outcome only.
    """
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}")
    text = completion.split(EOS, 1)[0]
    if ANSWER_SEP not in text:
        return None
    answer = text.rsplit(ANSWER_SEP, 1)[1]
    return int(answer) if _ANSWER.fullmatch(answer) else None


def reward(problem: Problem, completion: str) -> float:
    """``1.0`` if ``completion`` states the right answer (:func:`parse_answer`), else ``0.0``.

    A verifiable, outcome-only reward: no learned judge, no credit for the trace itself.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem, got {type(problem).__name__}")
    return 1.0 if parse_answer(completion) == problem.answer else 0.0


def uses_trace(completion: str) -> bool:
    """Whether the completion writes something before its answer separator ``|``."""
    text = completion.split(EOS, 1)[0]
    return ANSWER_SEP in text and text.rsplit(ANSWER_SEP, 1)[0] != ""


# --------------------------------------------------------------------------------------
# Encoding: prompts for generation, prompt + completion for supervised fine-tuning
# --------------------------------------------------------------------------------------


def encode_prompts(problems: Sequence[Problem]) -> torch.Tensor:
    """``(B, PROMPT_LENGTH)`` int64 prompt ids; equal lengths, so no padding is needed."""
    _check_problems(problems)
    return torch.tensor([TOKENIZER.encode(p.prompt) for p in problems], dtype=torch.long)


def decode_completion(ids: Sequence[int] | torch.Tensor) -> str:
    """The text of one completion's ids ``(T,)``, cut before its first EOS (EOS and padding
    after it are dropped)."""
    if isinstance(ids, torch.Tensor):
        check_tensor("ids", ids, dim=1, dtype="int")
        ids = ids.tolist()
    ids = list(ids)
    if EOS_ID in ids:
        ids = ids[: ids.index(EOS_ID)]
    return TOKENIZER.decode(ids)


def sft_batch(
    prompts: Sequence[str], completions: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(input_ids, completion_mask)`` for supervised fine-tuning, both ``(B, S)``.

    Row ``i`` is ``prompts[i] + completions[i] + EOS`` followed by :data:`PAD`;
    ``completion_mask`` is 1 on the completion's tokens and its EOS and 0 on the prompt and the
    padding, so the loss (:func:`tutorial_code.rl.completion_loss`) trains the model to write
    the answer and to stop, never to predict the prompt. Right padding needs no attention
    mask: a causal model's real tokens never see the padding after them.
    """
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(
            f"prompts and completions must be non-empty and of equal length, got "
            f"{len(prompts)} and {len(completions)}"
        )
    rows, masks = [], []
    for prompt, completion in zip(prompts, completions):
        p = TOKENIZER.encode(prompt)
        c = TOKENIZER.encode(completion) + [EOS_ID]
        if PAD_ID in p + c or EOS_ID in p + c[:-1]:
            raise ValueError(f"{prompt + completion!r} contains the PAD or EOS character")
        rows.append(p + c)
        masks.append([0] * len(p) + [1] * len(c))
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    completion_mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, (row, mask) in enumerate(zip(rows, masks)):
        input_ids[i, : len(row)] = torch.tensor(row)
        completion_mask[i, : len(mask)] = torch.tensor(mask)
    return input_ids, completion_mask


def _check_problems(problems: Sequence[Problem]) -> None:
    if not problems or not all(isinstance(p, Problem) for p in problems):
        raise ValueError("problems must be a non-empty sequence of Problem")


# --------------------------------------------------------------------------------------
# The base model's pre-training text
# --------------------------------------------------------------------------------------


def pretraining_text(
    n_documents: int,
    *,
    seed: int = 0,
    trace_fraction: float = 0.5,
    padded_fraction: float = 0.0,
    three_digit_fraction: float = 0.0,
) -> str:
    """``n_documents`` documents of one- and two-digit sums, each ending with EOS.

    A document is ``47+85=7+5=12,4+8+1=13|132.`` (with a two-column trace, probability
    ``trace_fraction``) or ``47+85=|132.``; operands are drawn from the training split only.
    Concatenated, as a pre-training corpus is: there is no prompt or completion here, and the
    model learns every character, operands included. Two knobs (both 0 for the shipped base
    model) bring the text closer to the task: ``padded_fraction`` of the documents write the
    operands zero-padded to three digits with a three-column trace (``047+085=...``), and
    ``three_digit_fraction`` of them draw operands up to 999 instead of 99.
    """
    check_int("n_documents", n_documents, low=1)
    check_int("seed", seed)
    trace_fraction = check_float("trace_fraction", trace_fraction, low=0.0, high=1.0)
    padded_fraction = check_float("padded_fraction", padded_fraction, low=0.0, high=1.0)
    three_digit_fraction = check_float(
        "three_digit_fraction", three_digit_fraction, low=0.0, high=1.0
    )
    rng = random.Random(f"pretraining/{seed}")
    docs = []
    while len(docs) < n_documents:
        top = 999 if rng.random() < three_digit_fraction else 99
        a, b = rng.randint(0, top), rng.randint(0, top)
        if split_of(a, b) != "train":
            continue
        padded = rng.random() < padded_fraction
        columns = 3 if padded or top == 999 else 2
        trace = _trace(a, b, columns) if rng.random() < trace_fraction else ""
        operands = f"{a:03d}+{b:03d}" if padded else f"{a}+{b}"
        docs.append(f"{operands}={trace}{ANSWER_SEP}{a + b}{EOS}")
    return "".join(docs)


# --------------------------------------------------------------------------------------
# Preference pairs
# --------------------------------------------------------------------------------------


def preference_pairs(
    problems: Sequence[Problem], completions: Sequence[Sequence[str]]
) -> list[dict[str, str]]:
    """Preference pairs in TRL's explicit-prompt format from the policy's own samples.

    ``completions[i]`` are sampled completions (texts without EOS) for ``problems[i]``. For
    each problem with at least one correct and one incorrect sample, the first correct one
    becomes ``"chosen"`` and the first incorrect one ``"rejected"``:
    ``{"prompt": "047+285=", "chosen": "7+5=12,...|332", "rejected": "|322"}``. Problems
    whose samples are all right or all wrong give no pair (the checker cannot prefer one).
    """
    _check_problems(problems)
    if len(completions) != len(problems):
        raise ValueError(
            f"need one list of completions per problem: {len(problems)} problems, "
            f"{len(completions)} lists"
        )
    pairs = []
    for problem, samples in zip(problems, completions):
        good = [c for c in samples if reward(problem, c) == 1.0]
        bad = [c for c in samples if reward(problem, c) == 0.0]
        if good and bad:
            pairs.append({"prompt": problem.prompt, "chosen": good[0], "rejected": bad[0]})
    return pairs


#: The turn markers of Anthropic's HH-RLHF dialogues.
HH_HUMAN, HH_ASSISTANT = "\n\nHuman: ", "\n\nAssistant: "


def explicit_prompt_to_hh(example: dict[str, str]) -> dict[str, str]:
    """``{"prompt", "chosen", "rejected"}`` -> HH-RLHF's ``{"chosen", "rejected"}`` dialogues.

    Each dialogue is ``"\\n\\nHuman: <prompt>\\n\\nAssistant: <completion>"``: the prompt is
    repeated inside both texts (Bai et al., 2022, the layout of the ``Anthropic/hh-rlhf``
    data set).
    """
    _check_example(example, ("prompt", "chosen", "rejected"))
    head = HH_HUMAN + example["prompt"] + HH_ASSISTANT
    return {"chosen": head + example["chosen"], "rejected": head + example["rejected"]}


def hh_to_explicit_prompt(example: dict[str, str]) -> dict[str, str]:
    """HH-RLHF's ``{"chosen", "rejected"}`` dialogues -> ``{"prompt", "chosen", "rejected"}``.

    The prompt is everything up to and including the last ``"\\n\\nAssistant: "`` of
    ``chosen``, template markers included (earlier turns of a multi-turn dialogue stay in the
    prompt); ``rejected`` must start with the same prompt. On a dialogue made by
    :func:`explicit_prompt_to_hh` it returns the chosen and rejected completions unchanged and
    the prompt wrapped in the template. (TRL's ``extract_prompt`` takes the longest common
    prefix of the two texts instead, which also swallows the first characters of the answers
    when they begin alike.)
    """
    _check_example(example, ("chosen", "rejected"))
    chosen, rejected = example["chosen"], example["rejected"]
    cut = chosen.rfind(HH_ASSISTANT)
    if cut < 0:
        raise ValueError(f"chosen has no {HH_ASSISTANT!r} turn: {chosen[:60]!r}")
    prompt = chosen[: cut + len(HH_ASSISTANT)]
    if not rejected.startswith(prompt):
        raise ValueError("chosen and rejected must share the dialogue up to the last answer")
    return {
        "prompt": prompt,
        "chosen": chosen[len(prompt) :],
        "rejected": rejected[len(prompt) :],
    }


def _check_example(example: dict[str, str], keys: Iterable[str]) -> None:
    if not isinstance(example, dict):
        raise TypeError(f"example must be a dict, got {type(example).__name__}")
    for key in keys:
        if key not in example:
            raise ValueError(f"example must have a str {key!r}, got keys {sorted(example)}")
        if not isinstance(example[key], str):
            raise TypeError(f"example[{key!r}] must be a str, got {type(example[key]).__name__}")
