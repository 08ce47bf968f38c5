"""Benchmark for chapter 6: int8 linear layers against float32, and the bytes they store.

Every method computes ``y = x W^T + b`` for an input of ``M`` rows (``M = 1``: decoding one
token; ``M = 64``: a batch of tokens, as in prefill) at two kinds of shape: a large
``4096 x 4096`` layer (a 7B-class model's attention projection) and the three linear shapes of
the book's GPT (``experiments/results/quant_gpt.json``: ``C -> C``, ``C -> 4C``, ``4C -> C``).

Methods (``tutorial_code.quant.Int8Linear`` unless said otherwise):

* ``fp32``: ``nn.Linear`` in float32 (the reference for every ratio);
* ``dequantize_then_matmul``: the int8 weight dequantized to float32 on every call, then the
  float32 matmul (int8 storage without an int8 kernel);
* ``weight_only``: mode ``"weight_only"`` with float32 activations, as the layer runs it;
* ``weight_only_int8pack_fp32``: ``torch.ops.aten._weight_int8pack_mm`` called directly with
  float32 activations (the kernel ``weight_only`` would use for every ``M``);
* ``bf16`` and ``weight_only_bf16``: ``nn.Linear`` in bfloat16, and mode ``"weight_only"`` with
  bfloat16 activations (``_weight_int8pack_mm``); ratios of these two are also given against
  ``bf16``;
* ``w8a8``: mode ``"w8a8"``: per-token activation quantization + ``torch._int_mm`` +
  rescaling by ``s_x ⊗ s_w`` + bias;
* ``int_mm_only``: the bare ``torch._int_mm`` on already-quantized int8 inputs (an upper bound
  for ``w8a8``: what the rest of the layer costs is the difference);
* ``llm_int8``: mode ``"llm_int8"`` on an input with a few outlier feature columns
  (``max(1, in // 512)`` columns scaled by 10, above the 6.0 threshold).

All methods see the same input. Timing: one torch thread by default (``--threads``); each
method is warmed up, then ``--repeats`` rounds run every method of every case once each, in an
order that rotates from round to round (interleaved, so a change in machine load hits all
methods alike). A timed sample is ``inner`` back-to-back calls (chosen so a float32 sample
takes about 5 ms) divided by ``inner``. Every raw per-call time is stored; the table uses
medians. Load averages before and after the run are recorded: timings taken while other jobs
run are inflated and noisier.

Bytes: ``state_dict_bytes`` (in memory) and the size of a safetensors file (on disk) of the
``4096 x 4096`` layer in float32 and int8, and of the whole book's GPT in float32 and with
every linear layer but the head in int8.

Usage::

    python benchmarks/quant.py                          # writes benchmarks/results/quant.json
    python benchmarks/quant.py --repeats 7 --threads 1 --output /tmp/quant.json

The bars: ``w8a8`` at least 1.5x faster than ``fp32`` at ``4096 x 4096`` with ``M = 64``;
the int8 ``4096 x 4096`` layer at least 3.9x smaller than float32 in memory and on disk.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from tutorial_code.costs import linear_bytes, state_dict_bytes
from tutorial_code.model import GPTConfig, GPTModel
from tutorial_code.notebook import cpu_model
from tutorial_code.quant import Int8Linear, dequantize, quantize_absmax, quantize_model

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "benchmarks" / "results" / "quant.json"
GPT_RECORD = ROOT / "experiments" / "results" / "quant_gpt.json"
ROWS = (1, 64)
BAR_SPEEDUP, BAR_BYTES = 1.5, 3.9
SAMPLE_SECONDS = 0.005


def machine() -> dict[str, object]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python_version": platform.python_version(),
        "platform": platform.platform(),
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def book_gpt_config() -> GPTConfig:
    record = json.loads(GPT_RECORD.read_text(encoding="utf-8"))
    return GPTConfig(**record["config"])


def shapes(cfg: GPTConfig) -> dict[str, tuple[int, int]]:
    """Name -> (in_features, out_features)."""
    c = cfg.emb_dim
    return {
        "4096x4096": (4096, 4096),
        f"gpt_attention_{c}x{c}": (c, c),
        f"gpt_fc1_{c}x{4 * c}": (c, 4 * c),
        f"gpt_fc2_{4 * c}x{c}": (4 * c, c),
    }


def methods(linear: nn.Linear, x: torch.Tensor) -> dict[str, Callable[[], torch.Tensor]]:
    """The timed callables for one layer and one input (all compute x W^T + b)."""
    w_q, s_w = quantize_absmax(linear.weight.detach(), dim=0)
    x_q, _ = quantize_absmax(x, dim=0)
    weight_only = Int8Linear.from_float(linear, mode="weight_only")
    w8a8 = Int8Linear.from_float(linear, mode="w8a8")
    llm_int8 = Int8Linear.from_float(linear, mode="llm_int8")
    linear_bf16 = copy.deepcopy(linear).to(torch.bfloat16)
    x_bf16 = x.to(torch.bfloat16)
    w_q_t = w_q.t()
    scale = s_w.squeeze(1)
    return {
        "fp32": lambda: linear(x),
        "dequantize_then_matmul": lambda: F.linear(x, dequantize(w_q, s_w), linear.bias),
        "weight_only": lambda: weight_only(x),
        "weight_only_int8pack_fp32": lambda: torch.ops.aten._weight_int8pack_mm(x, w_q, scale),
        "bf16": lambda: linear_bf16(x_bf16),
        "weight_only_bf16": lambda: weight_only(x_bf16),
        "w8a8": lambda: w8a8(x),
        "int_mm_only": lambda: torch._int_mm(x_q, w_q_t),
        "llm_int8": lambda: llm_int8(x),
    }


def cost_model(name: str, m: int, k: int, n: int) -> dict[str, float]:
    """FLOPs (2 M K N) and the bytes each method must at least move (weights, input, output).

    Counted: reading the stored weight (4, 2 or 1 byte per value; ``dequantize_then_matmul``
    also writes and re-reads a float32 copy), reading the input and writing the output in
    their dtypes, plus the int8 copy of the input and the int32 result for the int8 matmuls.
    """
    flops = 2 * m * k * n
    w = k * n
    if name in ("fp32",):
        moved = 4 * w + 4 * m * k + 4 * m * n
    elif name in ("dequantize_then_matmul", "weight_only"):
        extra = 0 if (name == "weight_only" and m == 1) else 8 * w  # write + read float32 W
        moved = w + extra + 4 * m * k + 4 * m * n
    elif name == "weight_only_int8pack_fp32":
        moved = w + 4 * m * k + 4 * m * n
    elif name == "bf16":
        moved = 2 * w + 2 * m * k + 2 * m * n
    elif name == "weight_only_bf16":
        moved = w + 2 * m * k + 2 * m * n
    elif name == "int_mm_only":
        moved = w + m * k + 4 * m * n
    else:  # w8a8, llm_int8: read x, write x_q, int8 matmul, int32 out, float out
        moved = w + 4 * m * k + 2 * m * k + 4 * m * n + 8 * m * n
    return {"flops": flops, "bytes": moved, "flops_per_byte": round(flops / moved, 2)}


def file_bytes(module: nn.Module) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
        return path.stat().st_size


def bytes_table(cfg: GPTConfig) -> dict[str, object]:
    torch.manual_seed(0)
    big = nn.Linear(4096, 4096)
    big_q = Int8Linear.from_float(big, mode="w8a8")
    layer = {
        "fp32_memory": state_dict_bytes(big),
        "int8_memory": state_dict_bytes(big_q),
        "fp32_file": file_bytes(big),
        "int8_file": file_bytes(big_q),
        "int8_formula": linear_bytes(4096, 4096, weight_bits=8),
    }
    layer["memory_ratio"] = round(layer["fp32_memory"] / layer["int8_memory"], 4)
    layer["file_ratio"] = round(layer["fp32_file"] / layer["int8_file"], 4)
    model = GPTModel(cfg)
    quantized = quantize_model(copy.deepcopy(model), mode="w8a8")
    parts: dict[str, int] = {}
    for name, tensor in quantized.state_dict().items():
        if tensor.dtype == torch.int8:
            kind = "int8 linear weights"
        elif name.endswith("weight_scale"):
            kind = "scales"
        elif name.startswith(("tok_emb", "pos_emb")):
            kind = "embeddings"
        elif name.startswith("out_head"):
            kind = "LM head (float32)"
        elif ".norm" in name or name.startswith("final_norm"):
            kind = "LayerNorms"
        else:
            kind = "biases"
        parts[kind] = parts.get(kind, 0) + tensor.numel() * tensor.element_size()
    whole = {
        "fp32_memory": state_dict_bytes(model),
        "int8_memory": state_dict_bytes(quantized),
        "fp32_file": file_bytes(model),
        "int8_file": file_bytes(quantized),
        "int8_parts": parts,
    }
    whole["memory_ratio"] = round(whole["fp32_memory"] / whole["int8_memory"], 4)
    whole["file_ratio"] = round(whole["fp32_file"] / whole["int8_file"], 4)
    return {"layer_4096x4096": layer, "book_gpt": whole}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds (>= 7)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    cfg = book_gpt_config()

    cases: dict[str, dict[str, Callable[[], torch.Tensor]]] = {}
    inner: dict[str, int] = {}
    meta: dict[str, dict[str, int]] = {}
    for shape_name, (k, n) in shapes(cfg).items():
        torch.manual_seed(0)
        linear = nn.Linear(k, n).requires_grad_(False)
        for m in ROWS:
            x = torch.randn(m, k, generator=torch.Generator().manual_seed(1))
            x[:, : max(1, k // 512)] *= 10.0  # outlier feature columns for llm_int8
            key = f"{shape_name}/M={m}"
            cases[key] = methods(linear, x)
            meta[key] = {"in_features": k, "out_features": n, "rows": m}

    load_before = load_average()
    with torch.inference_mode():
        for key, fns in cases.items():  # warm up; pick inner so an fp32 sample is ~5 ms
            for fn in fns.values():
                fn()
            start = time.perf_counter()
            fns["fp32"]()
            inner[key] = max(1, round(SAMPLE_SECONDS / (time.perf_counter() - start)))
        seconds = {key: {name: [] for name in fns} for key, fns in cases.items()}
        for repeat in range(args.repeats):
            for key, fns in cases.items():
                names = list(fns)
                shift = repeat % len(names)
                for name in names[shift:] + names[:shift]:
                    fn = fns[name]
                    start = time.perf_counter()
                    for _ in range(inner[key]):
                        fn()
                    seconds[key][name].append((time.perf_counter() - start) / inner[key])
            print(f"round {repeat + 1}/{args.repeats} done", flush=True)
    load_after = load_average()

    table = {}
    for key, per_method in seconds.items():
        med = {name: statistics.median(ts) for name, ts in per_method.items()}
        m, k, n = meta[key]["rows"], meta[key]["in_features"], meta[key]["out_features"]
        table[key] = {
            **meta[key],
            "inner_calls_per_sample": inner[key],
            "median_us": {name: round(t * 1e6, 2) for name, t in med.items()},
            "speedup_vs_fp32": {name: round(med["fp32"] / t, 3) for name, t in med.items()},
            "speedup_vs_bf16": {
                name: round(med["bf16"] / med[name], 3) for name in ("bf16", "weight_only_bf16")
            },
            "cost_model": {name: cost_model(name, m, k, n) for name in med},
            "achieved_gflops": {name: round(2 * m * k * n / t / 1e9, 2) for name, t in med.items()},
        }
    sizes = bytes_table(cfg)
    speedup = table["4096x4096/M=64"]["speedup_vs_fp32"]["w8a8"]
    layer = sizes["layer_4096x4096"]
    result = {
        "description": "int8 linear layers vs float32 on CPU: median time per call, bytes stored",
        "command": " ".join(
            ["python", "benchmarks/quant.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "threads": args.threads,
        "repeats": args.repeats,
        "book_gpt_config": {
            "emb_dim": cfg.emb_dim,
            "n_layers": cfg.n_layers,
            "vocab_size": cfg.vocab_size,
        },
        "table": table,
        "raw_seconds_per_call": {
            key: {name: [float(f"{t:.6g}") for t in ts] for name, ts in per.items()}
            for key, per in seconds.items()
        },
        "bytes": sizes,
        "bar": {
            "w8a8_speedup_4096_m64": speedup,
            "w8a8_speedup_at_least": BAR_SPEEDUP,
            "bytes_ratio_at_least": BAR_BYTES,
            "met": speedup >= BAR_SPEEDUP
            and layer["memory_ratio"] >= BAR_BYTES
            and layer["file_ratio"] >= BAR_BYTES,
        },
        "load_average_before": load_before,
        "load_average_after": load_after,
        "machine": machine(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for key, row in table.items():
        cells = "  ".join(f"{name} {v:.2f}x" for name, v in row["speedup_vs_fp32"].items())
        print(f"{key:<32} fp32 {row['median_us']['fp32']:9.1f} us  {cells}")
    print(json.dumps({"bar": result["bar"], "load": [load_before, load_after]}, indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
