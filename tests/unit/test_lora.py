"""tutorial_code.lora: LoRA, rsLoRA and DoRA layers, apply_lora and merging.

References: ``peft``'s LoRA/DoRA layers (the pinned version, a test-only dependency) with
copied ``A``/``B``, outputs and gradients; ``peft``'s parameter counts on the book's GPT and
on ``transformers``' GPT-2; values derived by hand (the 2,666,528 LoRA parameters of the
GPT-2-small shape with separate Q, K, V and a 2-class head at r = 16); the un-adapted model.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from tests.paths import load_script
from tutorial_code.costs import count_parameters
from tutorial_code.lora import (
    DoRALinear,
    LoRALinear,
    apply_lora,
    get_nb_trainable_parameters,
    magnitude_direction_change,
    merge_and_unload,
    trainable_parameters_report,
)
from tutorial_code.model import GPT2_SMALL_CONFIG, GPTConfig, GPTModel

peft = pytest.importorskip("peft")

IN, OUT, R, ALPHA = 12, 10, 4, 8.0


class Net(nn.Module):
    """One linear layer named ``lin``, for peft's ``target_modules=["lin"]``."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(IN, OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)


def pair(*, use_dora: bool, use_rslora: bool, lora_dropout: float = 0.0, seed: int = 0):
    """Our layer and peft's around copies of one base layer, with the same random A and B
    copied in *after* both were built (so DoRA's magnitude stays the base row norms)."""
    torch.manual_seed(seed)
    net = Net()
    cls = DoRALinear if use_dora else LoRALinear
    ours = cls(copy.deepcopy(net.lin), R, ALPHA, lora_dropout, use_rslora)
    config = peft.LoraConfig(
        r=R,
        lora_alpha=ALPHA,
        target_modules=["lin"],
        lora_dropout=lora_dropout,
        use_dora=use_dora,
        use_rslora=use_rslora,
    )
    theirs = peft.get_peft_model(net, config)
    layer = theirs.base_model.model.lin
    a, b = torch.randn(R, IN), torch.randn(OUT, R)
    with torch.no_grad():
        for lin in (ours.lora_A, layer.lora_A["default"]):
            lin.weight.copy_(a)
        for lin in (ours.lora_B, layer.lora_B["default"]):
            lin.weight.copy_(b)
    return ours, theirs, layer


def trainable_grads(ours: nn.Module, layer: nn.Module, use_dora: bool):
    pairs = [
        (ours.lora_A.weight.grad, layer.lora_A["default"].weight.grad),
        (ours.lora_B.weight.grad, layer.lora_B["default"].weight.grad),
    ]
    if use_dora:
        pairs.append((ours.magnitude.grad, layer.lora_magnitude_vector["default"].weight.grad))
    return pairs


@pytest.mark.parametrize(
    ("use_dora", "use_rslora"),
    [(False, False), (False, True), (True, False), (True, True)],
    ids=["lora", "rslora", "dora", "dora-rslora"],
)
def test_outputs_and_gradients_equal_peft(use_dora: bool, use_rslora: bool) -> None:
    """Reference: peft's lora.Linear (and its DoRA variant), eval mode, copied A and B."""
    ours, theirs, layer = pair(use_dora=use_dora, use_rslora=use_rslora)
    ours.eval()
    theirs.eval()
    expected = ALPHA / math.sqrt(R) if use_rslora else ALPHA / R
    assert ours.scaling == layer.scaling["default"] == expected
    if use_dora:
        torch.testing.assert_close(
            ours.magnitude, layer.lora_magnitude_vector["default"].weight, rtol=0, atol=0
        )
    x = torch.randn(3, 5, IN)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), theirs(x2)
    torch.testing.assert_close(y1, y2, rtol=0, atol=1e-6)
    grad = torch.randn_like(y1)
    y1.backward(grad)
    y2.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=1e-6)
    for a, b in trainable_grads(ours, layer, use_dora):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert ours.base_layer.weight.grad is None and layer.base_layer.weight.grad is None


@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
def test_training_mode_with_dropout_equals_peft(use_dora: bool) -> None:
    """Reference: peft in training mode with lora_dropout 0.3 and the same random stream
    (one dropout call per forward in both); DoRA's base path sees the clean input."""
    ours, theirs, layer = pair(use_dora=use_dora, use_rslora=False, lora_dropout=0.3, seed=1)
    ours.train()
    theirs.train()
    x = torch.randn(4, IN)
    torch.manual_seed(123)
    y1 = ours(x)
    torch.manual_seed(123)
    y2 = theirs(x)
    torch.testing.assert_close(y1, y2, rtol=0, atol=1e-6)
    y1.sum().backward()
    y2.sum().backward()
    for a, b in trainable_grads(ours, layer, use_dora):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_dora_trained_magnitude_equals_peft() -> None:
    """Reference: peft with the same non-initial magnitude copied into both layers."""
    ours, theirs, layer = pair(use_dora=True, use_rslora=False, seed=2)
    m = torch.rand(OUT) + 0.5
    with torch.no_grad():
        ours.magnitude.copy_(m)
        layer.lora_magnitude_vector["default"].weight.copy_(m)
    x = torch.randn(6, IN)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("layer_cls", [LoRALinear, DoRALinear])
def test_init_leaves_the_layer_unchanged(layer_cls: type[LoRALinear]) -> None:
    """Reference: the base nn.Linear itself (B = 0 at init; DoRA's magnitude = row norms)."""
    torch.manual_seed(3)
    base = nn.Linear(IN, OUT)
    layer = layer_cls(copy.deepcopy(base), R, ALPHA)
    assert torch.count_nonzero(layer.lora_B.weight) == 0
    assert torch.count_nonzero(layer.lora_A.weight) == R * IN
    bound = 1 / math.sqrt(IN)  # kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in))
    assert layer.lora_A.weight.abs().max() <= bound
    x = torch.randn(7, IN)
    torch.testing.assert_close(layer(x), base(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
def test_b_zero_leaves_the_gpt_unchanged(use_dora: bool) -> None:
    """Reference: the un-adapted GPT's logits."""
    cfg = GPTConfig(vocab_size=40, context_length=10, emb_dim=16, n_heads=2, n_layers=2)
    torch.manual_seed(4)
    model = GPTModel(cfg).eval()
    adapted = copy.deepcopy(model)
    apply_lora(adapted, "all-linear", 4, 8, use_dora=use_dora)
    ids = torch.randint(0, 40, (3, 10))
    torch.testing.assert_close(adapted(ids), model(ids), rtol=0, atol=1e-5)


# --------------------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------------------


def trained(layer: LoRALinear, seed: int) -> LoRALinear:
    """Give the adapter non-trivial values, as after training."""
    torch.manual_seed(seed)
    with torch.no_grad():
        layer.lora_B.weight.normal_()
        if isinstance(layer, DoRALinear):
            layer.magnitude.mul_(torch.rand_like(layer.magnitude) + 0.5)
    return layer.eval()


@pytest.mark.parametrize("layer_cls", [LoRALinear, DoRALinear])
def test_merge_equals_unmerged_output_and_unmerge_round_trips(layer_cls) -> None:
    """Reference: the unmerged layer's output; the original base weight (float32)."""
    torch.manual_seed(5)
    layer = trained(layer_cls(nn.Linear(IN, OUT), R, ALPHA), seed=6)
    original = layer.base_layer.weight.detach().clone()
    x = torch.randn(5, IN)
    before = layer(x)
    layer.merge()
    assert layer.merged
    torch.testing.assert_close(layer(x), before, rtol=0, atol=1e-5)
    torch.testing.assert_close(layer.base_layer(x), before, rtol=0, atol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(layer.base_layer.weight, original, rtol=0, atol=1e-6)
    torch.testing.assert_close(layer(x), before, rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError, match="not merged"):
        layer.unmerge()
    layer.merge()
    with pytest.raises(RuntimeError, match="already merged"):
        layer.merge()


@pytest.mark.parametrize("use_dora", [False, True], ids=["lora", "dora"])
def test_merge_and_unload_equals_peft(use_dora: bool) -> None:
    """Reference: peft's merge_and_unload on the same adapter: the same plain weight."""
    ours, theirs, layer = pair(use_dora=use_dora, use_rslora=False, seed=7)
    plain = ours.merge_and_unload()
    reference = theirs.merge_and_unload().lin
    assert type(plain) is nn.Linear
    torch.testing.assert_close(plain.weight, reference.weight, rtol=0, atol=1e-5)
    torch.testing.assert_close(plain.bias, reference.bias, rtol=0, atol=0)


def test_merge_and_unload_model_restores_the_plain_architecture() -> None:
    """Reference: the un-adapted model's state-dict keys and the adapted model's logits."""
    cfg = GPTConfig(vocab_size=40, context_length=10, emb_dim=16, n_heads=2, n_layers=2)
    torch.manual_seed(8)
    model = GPTModel(cfg)
    keys = list(model.state_dict())
    apply_lora(model, ["W_query", "W_value"], 4, 8, use_dora=True)
    for i, m in enumerate(m for m in model.modules() if isinstance(m, LoRALinear)):
        trained(m, seed=10 + i)
    model.eval()
    ids = torch.randint(0, 40, (2, 10))
    adapted = model(ids)
    merge_and_unload(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(model(ids), adapted, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="no LoRALinear"):
        merge_and_unload(model)


@pytest.mark.parametrize("layer_cls", [LoRALinear, DoRALinear])
def test_merged_weight_is_what_merge_writes(layer_cls) -> None:
    """Reference: the weight after merge(), and F.linear with it against the layer's output."""
    torch.manual_seed(18)
    layer = trained(layer_cls(nn.Linear(IN, OUT), R, ALPHA), seed=19)
    weight = layer.merged_weight()
    x = torch.randn(4, IN)
    torch.testing.assert_close(x @ weight.T + layer.base_layer.bias, layer(x), rtol=0, atol=1e-5)
    layer.merge()
    torch.testing.assert_close(layer.base_layer.weight, weight, rtol=0, atol=0)
    torch.testing.assert_close(layer.merged_weight(), weight, rtol=0, atol=0)


def test_magnitude_direction_change_by_hand() -> None:
    """Reference: hand-made changes. Scaling row 0 by 2 changes only its magnitude
    (delta_m = |w_0| / rows, delta_d = 0); rotating row 1 by 90 degrees keeps its magnitude
    and gives 1 - cos = 1 (delta_d = 1 / rows)."""
    w0 = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    scaled = torch.tensor([[6.0, 8.0], [1.0, 0.0]])
    assert magnitude_direction_change(scaled, w0) == pytest.approx((5.0 / 2, 0.0))
    rotated = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
    assert magnitude_direction_change(rotated, w0) == pytest.approx((0.0, 0.5))
    assert magnitude_direction_change(w0, w0) == (0.0, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        magnitude_direction_change(w0, w0.T[:1])


# --------------------------------------------------------------------------------------
# apply_lora and parameter counts
# --------------------------------------------------------------------------------------

GPT2_LINEARS = ["W_query", "W_key", "W_value", "out_proj", "fc1", "fc2", "out_head"]


def gpt2_classifier() -> GPTModel:
    """GPT-2 small's shape with a 2-class head, on the meta device (shapes, no memory)."""
    with torch.device("meta"):
        model = GPTModel(GPT2_SMALL_CONFIG)
        model.out_head = nn.Linear(768, 2)
    return model


def test_the_classic_count_2666528() -> None:
    """Reference: by hand, r (in + out) per linear: per block 4 x 16 (768 + 768) for Q, K, V,
    out_proj and 2 x 16 (768 + 3072) for the MLP = 221,184; x 12 = 2,654,208; plus the
    2-class head 16 (768 + 2) = 12,320; total 2,666,528. And peft's count on the same model."""
    model = gpt2_classifier()
    names = apply_lora(model, GPT2_LINEARS, 16, 16)
    assert len(names) == 12 * 6 + 1
    block = 4 * 16 * (768 + 768) + 2 * 16 * (768 + 3072)
    assert block == 221_184
    assert 12 * block + 16 * (768 + 2) == 2_666_528
    trainable, total = get_nb_trainable_parameters(model)
    assert trainable == 2_666_528
    reference = peft.get_peft_model(
        gpt2_classifier(), peft.LoraConfig(r=16, lora_alpha=16, target_modules=GPT2_LINEARS)
    )
    assert reference.get_nb_trainable_parameters() == (trainable, total)
    assert trainable_parameters_report(model) == (
        f"trainable params: 2,666,528 || all params: {total:,d} || "
        f"trainable%: {100 * 2_666_528 / total:.4f}"
    )


@pytest.mark.filterwarnings("ignore:fan_in_fan_out:UserWarning", "ignore::FutureWarning")
def test_hugging_faces_fused_gpt2_gives_2371616() -> None:
    """Reference: peft on transformers' GPT-2 (fused c_attn, Conv1D layers) with a 2-class
    head; by hand, one adapter on the fused 768 -> 2304 c_attn has 16 (768 + 2304) = 49,152
    parameters where three separate ones have 3 x 16 (768 + 768) = 73,728: 24,576 fewer per
    block, 294,912 fewer in 12 blocks."""
    from transformers import GPT2Config, GPT2ForSequenceClassification

    with torch.device("meta"):
        model = GPT2ForSequenceClassification(GPT2Config(num_labels=2))
    config = peft.LoraConfig(
        r=16, lora_alpha=16, target_modules=["c_attn", "c_proj", "c_fc", "score"],
        fan_in_fan_out=True,
    )  # fmt: skip
    trainable, _ = peft.get_peft_model(model, config).get_nb_trainable_parameters()
    assert trainable == 2_371_616 == 2_666_528 - 12 * (3 * 16 * (768 + 768) - 16 * (768 + 2304))


def test_apply_lora_freezes_everything_but_the_adapters() -> None:
    """Reference: the adapters' own parameter counts, r (in + out) (+ out for DoRA)."""
    cfg = GPTConfig(vocab_size=40, context_length=10, emb_dim=16, n_heads=2, n_layers=2)
    for use_dora in (False, True):
        model = GPTModel(cfg)
        names = apply_lora(model, "all-linear", 4, 8, use_dora=use_dora)
        assert len(names) == 12
        per_block = 4 * 4 * (16 + 16) + 2 * 4 * (16 + 64)
        magnitudes = (4 * 16 + 64 + 16) * 2 if use_dora else 0
        assert count_parameters(model, trainable_only=True) == 2 * per_block + magnitudes
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert all(
            n.rsplit(".", 2)[-2] in ("lora_A", "lora_B") or n.endswith("magnitude")
            for n in trainable
        )


def test_modules_to_save_stay_trainable() -> None:
    """Reference: the head's own parameter count, as peft's modules_to_save."""
    cfg = GPTConfig(vocab_size=40, context_length=10, emb_dim=16, n_heads=2, n_layers=2)
    model = GPTModel(cfg)
    apply_lora(model, ["W_query"], 2, 4, modules_to_save=["out_head"])
    assert count_parameters(model, trainable_only=True) == 2 * 2 * (16 + 16) + 16 * 40
    with pytest.raises(ValueError, match="matched no module"):
        apply_lora(GPTModel(cfg), ["W_query"], 2, 4, modules_to_save=["head"])


# --------------------------------------------------------------------------------------
# Pitfalls
# --------------------------------------------------------------------------------------


def test_pitfall_missing_one_over_r_is_r_times_the_update() -> None:
    """Reference: peft's alpha / r. A layer that multiplies B A x by alpha alone (no 1 / r)
    adds r times peft's update; at r = 16, alpha = 16 peft's scaling is 1, not 16."""
    ours, theirs, layer = pair(use_dora=False, use_rslora=False, seed=9)
    x = torch.randn(5, IN)
    base = ours.base_layer(x)
    update = ours(x) - base
    no_one_over_r = ALPHA * ours.lora_B(ours.lora_A(x))
    torch.testing.assert_close(update, (theirs(x) - base).detach())
    torch.testing.assert_close(no_one_over_r, R * update)
    assert LoRALinear(nn.Linear(4, 4), 16, 16).scaling == 1.0


def test_pitfall_rank_and_the_size_of_the_update() -> None:
    """Reference: variance by hand. With A ~ U(+-1/sqrt(in)) and a fixed B, sum over r of the
    update grows like r; alpha / r makes it shrink like 1 / r at fixed alpha and alpha / sqrt(r)
    (rsLoRA) keeps it of order 1: the rsLoRA paper's argument, measured on random layers."""
    torch.manual_seed(11)
    x = torch.randn(256, 64)
    sizes = {}
    for use_rslora in (False, True):
        for r in (4, 64):
            layer = LoRALinear(nn.Linear(64, 64), r, 8, use_rslora=use_rslora)
            with torch.no_grad():
                layer.lora_B.weight.normal_()
            sizes[use_rslora, r] = (layer(x) - layer.base_layer(x)).std().item()
    assert sizes[False, 64] / sizes[False, 4] < 0.4  # alpha / r: shrinks ~ 1/sqrt(16) = 0.25
    assert 0.6 < sizes[True, 64] / sizes[True, 4] < 1.6  # alpha / sqrt(r): stable


def test_pitfall_norm_over_the_wrong_dimension_changes_the_layer_at_init() -> None:
    """Reference: the base layer. With the magnitude and the norm both taken per output
    feature (dim=1) DoRA starts equal to the base; with dim=0 (per input feature, the paper's
    d x k "column" misread for PyTorch's (out, in) layout) it rescales the weight at init."""
    torch.manual_seed(12)
    base = nn.Linear(8, 8, bias=False)
    w = base.weight.detach()
    right = torch.linalg.norm(w, dim=1)[:, None] * w / torch.linalg.norm(w, dim=1)[:, None]
    wrong = torch.linalg.norm(w, dim=0)[:, None] * w / torch.linalg.norm(w, dim=1)[:, None]
    torch.testing.assert_close(right, w)
    assert (wrong - w).abs().max() > 0.1
    layer = DoRALinear(copy.deepcopy(base), 2, 4)
    assert layer.magnitude.shape == (8,)
    torch.testing.assert_close(layer.magnitude, torch.linalg.norm(w, dim=1))
    rectangular = DoRALinear(nn.Linear(12, 5), 2, 4)
    assert rectangular.magnitude.shape == (5,)  # one per output feature, not (12,)


def test_pitfall_the_norm_is_detached() -> None:
    """Reference: the same layer with the norm left in the graph (DoRA section 4.3): the
    gradients differ, and ours equal peft's (which detaches)."""
    torch.manual_seed(13)
    layer = trained(DoRALinear(nn.Linear(IN, OUT), R, ALPHA), seed=14)
    x = torch.randn(6, IN)
    g = torch.randn(6, OUT)
    layer(x).backward(g)
    detached = layer.lora_A.weight.grad.clone()
    layer.zero_grad()
    w = layer.base_layer.weight + layer.get_delta_weight()
    attached = (layer.magnitude / torch.linalg.norm(w, dim=1))[:, None] * w
    torch.testing.assert_close(layer(x), x @ attached.T + layer.base_layer.bias)  # same output
    (x @ attached.T + layer.base_layer.bias).backward(g)
    assert (layer.lora_A.weight.grad - detached).abs().max() > 1e-3


def test_pitfall_forgetting_to_freeze_the_base() -> None:
    """Reference: parameter values before and after an AdamW step with weight decay. Wrapping
    without freezing (adapters added to a trainable model) trains every weight; apply_lora
    freezes first, so one step changes only lora_A, lora_B."""
    cfg = GPTConfig(vocab_size=40, context_length=10, emb_dim=16, n_heads=2, n_layers=1)
    torch.manual_seed(15)
    model = GPTModel(cfg)
    unfrozen = copy.deepcopy(model)
    apply_lora(model, "all-linear", 2, 4)
    for name in ["trf_blocks.0.att.W_query", "trf_blocks.0.ff.fc1"]:  # wrapped, never frozen
        unfrozen.set_submodule(name, LoRALinear(unfrozen.get_submodule(name), 2, 4))
    unfrozen.requires_grad_(True)
    assert count_parameters(unfrozen, trainable_only=True) == count_parameters(unfrozen)
    ids = torch.randint(0, 40, (2, 10))
    for m in (model, unfrozen):
        before = {n: p.detach().clone() for n, p in m.named_parameters()}
        optimizer = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
        m(ids).logsumexp(-1).mean().backward()
        optimizer.step()
        changed = {n for n, p in m.named_parameters() if not torch.equal(p, before[n])}
        if m is model:
            assert changed and all(".lora_A." in n or ".lora_B." in n for n in changed)
        else:
            assert (
                "tok_emb.weight" in changed
                and "trf_blocks.0.att.W_query.base_layer.weight" in changed
            )


def round_trip_errors(layer_cls, dtype: torch.dtype, cycles: int) -> list[tuple[float, float]]:
    """(mean |W - W_0|, fraction of weights changed) after each merge/unmerge cycle."""
    torch.manual_seed(16)
    layer = trained(layer_cls(nn.Linear(64, 64).to(dtype), 8, 16), seed=17)
    original = layer.base_layer.weight.detach().float().clone()
    errors = []
    for _ in range(cycles):
        layer.merge()
        layer.unmerge()
        diff = (layer.base_layer.weight.float() - original).abs()
        errors.append((diff.mean().item(), (diff > 0).float().mean().item()))
    return errors


@pytest.mark.parametrize("layer_cls", [LoRALinear, DoRALinear])
def test_pitfall_merge_unmerge_drifts_in_bfloat16(layer_cls) -> None:
    """Reference: the original weights. In float32 a merge/unmerge round trip returns them to
    ~1e-8; in bfloat16 (8 significant bits) rounding W + s B A and then W' - s B A leaves most
    weights off by about one unit in the last place (LoRA reaches a fixed point after one
    cycle; DoRA's divide-and-multiply keeps drifting with every cycle)."""
    fp32 = round_trip_errors(layer_cls, torch.float32, 10)
    bf16 = round_trip_errors(layer_cls, torch.bfloat16, 10)
    assert fp32[-1][0] < 1e-7
    assert bf16[0][0] > 1e-4 and bf16[0][1] > 0.5  # mean |w| is about 0.06
    if layer_cls is DoRALinear:
        assert bf16[-1][0] > 1.5 * bf16[0][0]


def test_bad_arguments_raise_clear_errors() -> None:
    """Reference: the argument checks' documented messages."""
    with pytest.raises(TypeError, match="base_layer must be a torch.nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1), 2, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="r must be an int >= 1"):
        LoRALinear(nn.Linear(4, 4), 0, 4)
    with pytest.raises(ValueError, match="lora_alpha must be > 0"):
        LoRALinear(nn.Linear(4, 4), 2, 0)
    with pytest.raises(ValueError, match="lora_dropout must be in"):
        LoRALinear(nn.Linear(4, 4), 2, 4, lora_dropout=1.0)
    with pytest.raises(TypeError, match="use_rslora must be a bool"):
        LoRALinear(nn.Linear(4, 4), 2, 4, use_rslora=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="use_dora must be a bool"):
        apply_lora(Net(), ["lin"], 2, 4, use_dora="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="matched no Linear"):
        apply_lora(Net(), ["linear"], 2, 4)
    with pytest.raises(TypeError, match="modules_to_save must be a list"):
        apply_lora(Net(), ["lin"], 2, 4, modules_to_save="lin")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        apply_lora("model", ["lin"], 2, 4)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# The stored experiment (experiments/lora.py) against a short re-run
# --------------------------------------------------------------------------------------


def test_stored_lora_experiment_matches_a_short_rerun() -> None:
    """Reference: experiments/results/lora.json. Five pre-training steps and five DoRA steps
    on the same schedule reproduce the stored check; the stored runs cover every method, rank
    and seed, and their trainable-parameter and optimizer-state counts follow by hand."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "lora.py"
    script = load_script("experiments/lora.py")
    stored = json.loads((path.parent / "results" / "lora.json").read_text(encoding="utf-8"))
    torch.set_num_threads(1)
    rerun = script.check_slice(
        script.corpus(), total_steps=stored["steps"], pretrain_steps=stored["pretrain_steps"]
    )
    for key in ("pretrain_losses", "dora_r4_losses"):
        assert rerun[key] == pytest.approx(stored["check"][key], rel=1e-4)
    runs = stored["runs"]
    expected = {("full", None)} | {(m, r) for m in ("lora", "dora") for r in stored["ranks"]}
    for seed in stored["seeds"]:
        assert {(r["method"], r["rank"]) for r in runs if r["seed"] == seed} == expected
    c, layers = stored["settings"]["emb_dim"], stored["settings"]["n_layers"]
    for r in runs:
        if r["method"] == "full":
            assert r["trainable_parameters"] == r["total_parameters"]
        else:  # per block: 4 attention matrices C x C, fc1 C -> 4C, fc2 4C -> C
            adapters = layers * r["rank"] * (4 * 2 * c + 2 * 5 * c)
            magnitudes = layers * (4 * c + 4 * c + c) if r["method"] == "dora" else 0
            assert r["trainable_parameters"] == adapters + magnitudes
        assert r["optimizer_state_bytes"] == 2 * 4 * r["trainable_parameters"]  # Adam, fp32
