"""Tests for tutorial_code.task: the addition task, its splits, checker and data formats."""

from __future__ import annotations

import itertools
import re

import pytest
import torch

from tutorial_code.task import (
    EOS,
    EOS_ID,
    MAX_COMPLETION_LENGTH,
    PAD_ID,
    PROMPT_LENGTH,
    TOKENIZER,
    VOCAB,
    Problem,
    decode_completion,
    encode_prompts,
    explicit_prompt_to_hh,
    hh_to_explicit_prompt,
    parse_answer,
    preference_pairs,
    pretraining_text,
    reward,
    sample_problems,
    sft_batch,
    split_of,
    uses_trace,
)


def test_prompt_trace_and_completion_by_hand() -> None:
    """Worked by hand: 47 + 285 = 332, carries out of the units and the tens column."""
    p = Problem(47, 285)
    assert p.prompt == "047+285="
    assert p.trace == "7+5=12,4+8+1=13,0+2+1=3"
    assert p.completion(trace=True) == "7+5=12,4+8+1=13,0+2+1=3|332"
    assert p.completion(trace=False) == "|332"
    assert Problem(999, 999).completion(trace=True) == "9+9=18,9+9+1=19,9+9+1=19|1998"
    assert Problem(0, 0).completion(trace=True) == "0+0=0,0+0=0,0+0=0|0"


def test_every_reference_completion_is_rewarded_and_fits_the_limits() -> None:
    """The checker accepts both reference completions of 2,000 random problems; lengths
    stay within PROMPT_LENGTH and MAX_COMPLETION_LENGTH (which 999+999 reaches)."""
    longest = 0
    for p in sample_problems(2000, split="train", seed=5):
        assert len(p.prompt) == PROMPT_LENGTH
        for trace in (True, False):
            text = p.completion(trace=trace)
            assert reward(p, text) == 1.0 and reward(p, text + EOS + "junk") == 1.0
            assert uses_trace(text) == trace
            longest = max(longest, len(text) + 1)
    assert longest <= MAX_COMPLETION_LENGTH
    assert len(Problem(999, 999).completion(trace=True)) + 1 == MAX_COMPLETION_LENGTH


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("|332", 332),
        ("7+5=12|332", 332),
        ("|33|332", 332),  # the last separator counts
        ("|0", 0),
        ("|1998.", 1998),
        ("|332.|999", 332),  # text after EOS is ignored
        ("332", None),  # no separator
        ("|", None),
        ("|0332", None),  # leading zero
        ("|12345", None),  # more than four digits
        ("|33,2", None),
        ("|+332", None),
    ],
)
def test_parse_answer_cases(text: str, answer: int | None) -> None:
    """Hand-written cases of the answer grammar: a decimal without leading zeros after the
    last '|' (before any EOS)."""
    assert parse_answer(text) == answer


def test_reward_wrong_answers_and_bad_inputs() -> None:
    p = Problem(47, 285)
    assert reward(p, "|333") == 0.0
    assert reward(p, "7+5=12,4+8+1=13,0+2+1=3") == 0.0  # trace without an answer
    assert reward(p, "9+9=99|332") == 1.0  # outcome reward: the trace is not checked
    with pytest.raises(TypeError, match="problem must be a Problem"):
        reward("047+285=", "|332")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="completion must be a str"):
        parse_answer(332)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a must be an int in"):
        Problem(1000, 1)
    with pytest.raises(TypeError, match="b must be an int"):
        Problem(1, 2.0)  # type: ignore[arg-type]


def test_splits_partition_all_pairs_symmetrically() -> None:
    """Exhaustive over all 10^6 pairs: every pair has exactly one split, a+b and b+a share
    it, and the shares are close to the documented 90/5/5."""
    counts = {"train": 0, "val": 0, "test": 0}
    for a in range(0, 1000, 3):
        for b in range(1000):
            s = split_of(a, b)
            counts[s] += 1
            if b % 97 == 0:
                assert split_of(b, a) == s
    total = sum(counts.values())
    assert abs(counts["test"] / total - 0.05) < 0.003
    assert abs(counts["val"] / total - 0.05) < 0.003


def test_sample_problems_is_deterministic_unique_and_respects_splits() -> None:
    """Same arguments give the same list; splits never overlap (checked by set intersection,
    also for the commuted problems); no repeats with unique=True."""
    train = sample_problems(3000, split="train", seed=0)
    assert train == sample_problems(3000, split="train", seed=0)
    assert train != sample_problems(3000, split="train", seed=1)
    val = sample_problems(500, split="val")
    test = sample_problems(500, split="test")
    keys = [{(p.a, p.b) for p in s} | {(p.b, p.a) for p in s} for s in (train, val, test)]
    for x, y in itertools.combinations(keys, 2):
        assert not x & y
    assert len({(p.a, p.b) for p in train}) == 3000
    assert all(split_of(p.a, p.b) == "test" for p in test)
    small = sample_problems(50, split="val", max_operand=99)
    assert max(max(p.a, p.b) for p in small) <= 99


def test_sample_problems_errors() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        sample_problems(3, split="dev")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="could not draw"):
        sample_problems(1000, split="test", max_operand=9)
    with pytest.raises(TypeError, match="n must be an int"):
        sample_problems(2.5)  # type: ignore[arg-type]


def test_tokenizer_round_trip_and_special_ids() -> None:
    assert TOKENIZER.vocab_size == len(VOCAB) == 16
    assert TOKENIZER.decode([PAD_ID, EOS_ID]) == "_."
    text = Problem(47, 285).prompt + Problem(47, 285).completion(trace=True) + EOS
    assert TOKENIZER.decode(TOKENIZER.encode(text)) == text


def test_encode_prompts_and_decode_completion() -> None:
    problems = sample_problems(4, split="val")
    ids = encode_prompts(problems)
    assert ids.shape == (4, PROMPT_LENGTH) and ids.dtype == torch.long
    assert [TOKENIZER.decode(row) for row in ids] == [p.prompt for p in problems]
    completion = torch.tensor(TOKENIZER.encode("|332") + [EOS_ID, PAD_ID, PAD_ID])
    assert decode_completion(completion) == "|332"
    assert decode_completion([5, 6]) == TOKENIZER.decode([5, 6])
    with pytest.raises(ValueError, match="problems must be a non-empty sequence"):
        encode_prompts([])
    with pytest.raises(ValueError, match="ids must have 1 dimension"):
        decode_completion(completion[None])


def test_sft_batch_masks_exactly_the_completion_and_eos() -> None:
    """Compared with the masks written out by hand for two rows of unequal length."""
    ids, mask = sft_batch(["047+285=", "001+002="], ["|332", "1+2=3,0+0=0,0+0=0|3"])
    first = TOKENIZER.encode("047+285=|332.")
    assert ids[0, : len(first)].tolist() == first
    assert (ids[0, len(first) :] == PAD_ID).all()
    assert mask[0].tolist() == [0] * 8 + [1] * 5 + [0] * (ids.shape[1] - 13)
    assert mask[1].tolist() == [0] * 8 + [1] * (ids.shape[1] - 8)
    assert ids[1, -1].item() == EOS_ID
    with pytest.raises(ValueError, match="equal length"):
        sft_batch(["047+285="], [])
    with pytest.raises(ValueError, match="contains the PAD or EOS"):
        sft_batch(["047+285="], ["|33.2"])


def test_pretraining_text_is_documents_of_small_training_sums() -> None:
    """Each document parses as 'a+b=[trace]|a+b.' with a, b < 100 from the train split; the
    trace share is near trace_fraction; the text is deterministic."""
    text = pretraining_text(2000, seed=3)
    assert text == pretraining_text(2000, seed=3)
    docs = text.split(EOS)[:-1]
    assert len(docs) == 2000 and text.endswith(EOS)
    pattern = re.compile(r"(\d{1,2})\+(\d{1,2})=(.*)\|(\d+)")
    traced = 0
    for doc in docs:
        a, b, trace, answer = pattern.fullmatch(doc).groups()  # type: ignore[union-attr]
        assert int(answer) == int(a) + int(b) and split_of(int(a), int(b)) == "train"
        assert trace.count("=") in (0, 2)
        traced += trace != ""
    assert abs(traced / len(docs) - 0.5) < 0.05
    assert "_" not in text and "|" in pretraining_text(1, seed=0, trace_fraction=0.0)
    with pytest.raises(ValueError, match="trace_fraction must be in"):
        pretraining_text(10, trace_fraction=1.5)


def test_preference_pairs_pick_a_correct_and_an_incorrect_sample() -> None:
    """Built by hand: only problems with both a right and a wrong sample give a pair, in
    TRL's explicit-prompt format."""
    p, q, r = Problem(1, 2), Problem(10, 20), Problem(5, 5)
    pairs = preference_pairs([p, q, r], [["|4", "|3", "1+2=3|3"], ["|30", "|30"], ["|9", "|1"]])
    assert pairs == [{"prompt": "001+002=", "chosen": "|3", "rejected": "|4"}]
    with pytest.raises(ValueError, match="one list of completions per problem"):
        preference_pairs([p], [])


def test_hh_rlhf_layout_round_trip() -> None:
    """explicit -> HH (the prompt repeated inside both dialogues) -> explicit keeps the two
    completions and wraps the prompt in the turn markers; a multi-turn dialogue keeps its
    earlier turns in the prompt."""
    pair = {"prompt": "047+285=", "chosen": "|332", "rejected": "|322"}
    hh = explicit_prompt_to_hh(pair)
    assert hh == {
        "chosen": "\n\nHuman: 047+285=\n\nAssistant: |332",
        "rejected": "\n\nHuman: 047+285=\n\nAssistant: |322",
    }
    back = hh_to_explicit_prompt(hh)
    assert back == {
        "prompt": "\n\nHuman: 047+285=\n\nAssistant: ",
        "chosen": "|332",
        "rejected": "|322",
    }
    multi = {
        "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: 1+1?\n\nAssistant: 2",
        "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: 1+1?\n\nAssistant: 3",
    }
    out = hh_to_explicit_prompt(multi)
    assert out["prompt"].endswith("1+1?\n\nAssistant: ") and out["prompt"].count("Human") == 2
    assert (out["chosen"], out["rejected"]) == ("2", "3")
    with pytest.raises(ValueError, match="share the dialogue"):
        hh_to_explicit_prompt({"chosen": hh["chosen"], "rejected": "\n\nHuman: x\n\nAssistant: 1"})
    with pytest.raises(ValueError, match="no '\\\\n\\\\nAssistant: ' turn"):
        hh_to_explicit_prompt({"chosen": "abc", "rejected": "abd"})
    with pytest.raises(ValueError, match="must have a str 'prompt'"):
        explicit_prompt_to_hh({"chosen": "a", "rejected": "b"})
