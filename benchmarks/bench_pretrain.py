"""Pretraining throughput: ECG-report pairs per second, peak memory and (on a GPU) model FLOPs utilisation.

Runs the real training path (`CGDMERPretrainer`: collator with tokenization, model, AdamW, scheduler) on the
bundled PTB-XL sample (30 training records, repeated to fill the batches) for `--warmup` + `--steps` optimizer
steps and times the last `--steps`.

    python benchmarks/bench_pretrain.py                          # CPU: small, float32
    python benchmarks/bench_pretrain.py --presets small base     # GPU: bf16 by default, MFU against the bf16 peak
    python benchmarks/bench_pretrain.py --designs default v0.1   # the divided-attention design against v0.1
    python benchmarks/bench_pretrain.py --profile --threads 2    # where the step's time goes, fp32 and bf16
    python benchmarks/bench_pretrain.py --compile --threads 2    # eager against torch.compile, fp32 and bf16
    python benchmarks/bench_pretrain.py --compile --modes eager --rounds 9 --threads 2   # bf16 gain, no compile
    python benchmarks/bench_pretrain.py --precisions fp32 bf16 --rounds 3 --threads 2   # Trainer pairs/s, both
    python benchmarks/bench_pretrain.py --softmax --threads 2    # the bf16 attention softmax paths, by row length
    python benchmarks/bench_pretrain.py --max-batch              # GPU: the largest bf16 batch that fits, per preset
    python benchmarks/bench_pretrain.py --precision-check        # bf16 against fp32: losses, embeddings, gradients

On a shared CPU, other processes' threads can slow OpenMP down many times over (the 1-minute load average is
saved with the result); `--threads 1 2` measures both settings.

Peak memory: on a GPU `torch.cuda.max_memory_allocated` over the timed steps; on the CPU the process's peak resident
set size (`ru_maxrss`, everything the Python process holds). FLOPs per pair are counted once with
`torch.utils.flop_counter.FlopCounterMode` over a forward and backward pass of a batch; MFU = achieved FLOP/s
over the device's dense bf16 peak (known for H100/H200/A100; otherwise not reported). Prints a table and writes
`benchmarks/results/bench_pretrain.json`.
"""

from __future__ import annotations

import argparse
import bisect
import ctypes
import ctypes.util
import functools
import itertools
import json
import os
import platform
import resource
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from cgdmer_hf.configuration_cgdmer import LEGACY_DEFAULTS

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets.
BF16_PEAK = {"H200": 989.4e12, "H100 SXM": 989.4e12, "H100 80GB HBM3": 989.4e12, "H100 PCIe": 756.0e12,
             "H100 NVL": 835.0e12, "H100": 989.4e12, "A100": 312.0e12}
RESULTS = Path(__file__).resolve().parent / "results" / "bench_pretrain.json"
# ECG tower designs to compare: today's defaults and v0.1's joint attention without routing.
DESIGNS = {"default": {}, "v0.1": LEGACY_DEFAULTS}
MODES = ("eager", "compiled")


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def device_peak(name: str) -> float | None:
    for key, value in BF16_PEAK.items():  # most specific names first
        if key in name:
            return value
    return None


def build(preset: str, batch_size: int, steps: int, bf16: bool, use_cpu: bool, output_dir: str, num_workers: int,
          design: str = "default"):
    from datasets import concatenate_datasets

    from cgdmer_hf import CGDMERConfig, CGDMERForPreTraining
    from cgdmer_hf.data import load_ptbxl
    from cgdmer_hf.reports import load_default_tokenizer
    from cgdmer_hf.samples import sample_data_dir
    from cgdmer_hf.training import (
        CGDMERPretrainer,
        CGDMERPretrainingCollator,
        configure_for_tokenizer,
        prepare_pretraining_dataset,
        pretraining_arguments,
    )

    tokenizer = load_default_tokenizer()
    config = configure_for_tokenizer(CGDMERConfig.from_preset(preset, ecg_config=dict(DESIGNS[design])), tokenizer)
    train = prepare_pretraining_dataset(load_ptbxl(sample_data_dir(), split="train"))
    repeats = -(-batch_size * steps // len(train)) + 1
    train = concatenate_datasets([train] * repeats).with_format("torch")
    args = pretraining_arguments(output_dir, max_steps=steps, per_device_train_batch_size=batch_size, bf16=bf16,
                                 use_cpu=use_cpu, save_strategy="no", logging_steps=10**9, disable_tqdm=True,
                                 dataloader_drop_last=True, dataloader_num_workers=num_workers)
    collator = CGDMERPretrainingCollator(tokenizer, config=config, mask_reports=False,
                                         pad_to_multiple_of=8 if bf16 else None)
    model = CGDMERForPreTraining(config)
    return CGDMERPretrainer(model=model, args=args, train_dataset=train, data_collator=collator), collator, train


def flops_per_pair(trainer, collator, dataset, batch_size: int) -> float:
    """FLOPs of one forward + backward pass per ECG-report pair, counted on one batch. Attention runs on SDPA's
    math backend while counting: `FlopCounterMode` counts no FLOPs for the CPU flash-attention kernel (torch
    2.13), and the math backend's matmuls are the FLOPs the fused kernels do."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    batch = collator.mask_reports(collator([dataset[i] for i in range(batch_size)]))
    model = trainer.model.to(trainer.args.device).train()
    batch = {k: v.to(trainer.args.device) for k, v in batch.items()}
    dtype = torch.bfloat16 if trainer.args.bf16 else None
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        with torch.autocast(trainer.args.device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch_size


class Timer:
    def __init__(self, warmup: int, cuda: bool):
        self.warmup, self.cuda, self.times = warmup, cuda, []

    def __call__(self, step: int) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        if step == self.warmup and self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self.times.append(time.perf_counter())


def run(preset: str, batch_size: int, steps: int, warmup: int, bf16: bool, use_cpu: bool, out_dir: str,
        num_workers: int = 0, design: str = "default") -> dict:
    from transformers import TrainerCallback

    cuda = torch.cuda.is_available() and not use_cpu
    trainer, collator, train = build(preset, batch_size, warmup + steps, bf16, use_cpu, out_dir, num_workers, design)
    flops = flops_per_pair(trainer, collator, train, batch_size)
    timer = Timer(warmup, cuda)

    class _Step(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= warmup:
                timer(state.global_step)

    trainer.add_callback(_Step())
    trainer.train()
    elapsed = timer.times[-1] - timer.times[0]
    pairs_per_s = batch_size * steps / elapsed
    row = {
        "preset": preset, "design": design, "batch_size": batch_size, "precision": "bf16" if bf16 else "fp32",
        "timed_steps": steps, "warmup_steps": warmup, "dataloader_workers": num_workers,
        "pairs_per_s": round(pairs_per_s, 2),
        "parameters_M": round(sum(p.numel() for p in trainer.model.parameters()) / 1e6, 2),
        "gflop_per_pair": round(flops / 1e9, 3), "achieved_tflop_s": round(flops * pairs_per_s / 1e12, 4),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    if cuda:
        name = device_name("cuda")
        peak = device_peak(name)
        row.update(device=name, peak_memory_MiB=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                   mfu=round(flops * pairs_per_s / peak, 4) if peak and bf16 else None)
    else:
        row.update(device=device_name("cpu"),
                   peak_memory_MiB=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                   peak_memory_kind="process peak RSS (over this and earlier rows)", mfu=None)
    return row


def bf16_gains(rows: list[dict]) -> dict[str, float]:
    """bf16 over fp32 pairs/s (medians over the rounds) for each preset, design and device timed in both."""
    runs: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for row in rows:
        key = (row["preset"], row["design"], row["device"])
        runs.setdefault(key, {}).setdefault(row["precision"], []).append(row["pairs_per_s"])
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    return {" / ".join(key): round(median(both["bf16"]) / median(both["fp32"]), 3)
            for key, both in runs.items() if {"fp32", "bf16"} <= both.keys()}


# ---- step profile ---------------------------------------------------------------------------------------------
# Components of the pretraining step, as module paths inside `CGDMERForPreTraining` (a module called twice, such as
# the report encoder, is counted once per call). Forward time is the time inside each module; backward time is the
# time of the autograd nodes its forward ops created (the profiler links them by sequence number).
PROFILE_COMPONENTS = {
    "ECG masking": ["generate_ecg_mask"],
    "ECG embedding": ["cgdmer.ecg_model.embeddings"],
    "ECG encoder": ["cgdmer.ecg_model.encoder"],
    "ECG decoder": ["ecg_decoder"],
    "report encoder (clean + masked pass)": ["cgdmer.text_model"],
    "masked-report head": ["mlm_head"],
    "shared encoder": ["cgdmer.shared_encoder"],
    "specific encoders": ["cgdmer.ecg_specific_encoder", "cgdmer.text_specific_encoder"],
}


def _label_ranges(model, record_function):
    """Forward hooks (and a wrapped `generate_ecg_mask`) that open a profiler range per component; returns an undo."""
    handles, patched = [], []
    for label, paths in PROFILE_COMPONENTS.items():
        for path in paths:
            owner, _, leaf = path.rpartition(".")
            parent = model.get_submodule(owner) if owner else model
            target = getattr(parent, leaf, None)
            if isinstance(target, torch.nn.Module):
                ranges: list = []
                handles.append(target.register_forward_pre_hook(
                    lambda m, a, label=label, ranges=ranges: ranges.append(record_function(label).__enter__())))
                handles.append(target.register_forward_hook(
                    lambda m, a, o, ranges=ranges: ranges.pop().__exit__(None, None, None)))
            elif callable(target):
                def wrapped(*args, _fn=target, _label=label, **kwargs):
                    with record_function(_label):
                        return _fn(*args, **kwargs)
                setattr(parent, leaf, wrapped)
                patched.append((parent, leaf))

    def undo() -> None:
        for handle in handles:
            handle.remove()
        for parent, leaf in patched:
            delattr(parent, leaf)
    return undo


def _attribute(events, labels: set[str]) -> dict[str, float]:
    """Milliseconds per component, forward and backward, from a profile of whole steps."""
    ranges = sorted((e for e in events if e.name in labels), key=lambda e: e.time_range.start)
    seq_label: dict[int, str] = {}
    times: dict[str, float] = {}

    def add(key: str, us: float) -> None:
        times[key] = times.get(key, 0.0) + us / 1000

    for event in ranges:
        add(f"{event.name} | forward", event.time_range.elapsed_us())
    starts = [r.time_range.start for r in ranges]
    for event in events:
        if event.sequence_nr < 0 or event.name.startswith("autograd::") or event.name in labels:
            continue
        i = bisect.bisect_right(starts, event.time_range.start) - 1
        if i >= 0 and ranges[i].time_range.end >= event.time_range.end:
            seq_label.setdefault(event.sequence_nr, ranges[i].name)
    for event in events:
        parent = event.cpu_parent.name if event.cpu_parent is not None else ""
        if event.name.startswith("autograd::engine::evaluate_function") and not parent.startswith("autograd::"):
            add(f"{seq_label.get(event.sequence_nr, 'losses, projections and glue')} | backward",
                event.time_range.elapsed_us())
        elif event.name in ("forward", "backward", "optimizer", "collator"):
            add(f"total {event.name}", event.time_range.elapsed_us())
    return times


def profile_step(preset: str, batch_size: int, steps: int, rounds: int, design: str = "default") -> dict:
    """Time shares of each part of the pretraining step, fp32 and bf16 autocast interleaved over `rounds`."""
    import tempfile

    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as tmp:
        trainer, collator, train = build(preset, batch_size, steps, False, True, tmp, 0, design)
    model = trainer.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # the Trainer's default optimizer
    examples = [train[i] for i in range(batch_size)]

    def step(dtype) -> None:
        with record_function("collator"):
            batch = collator.mask_reports(collator(examples))
        with record_function("forward"), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = model(**batch).loss
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    totals: dict[str, dict[str, float]] = {"fp32": {}, "bf16": {}}
    step_ms: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        for dtype in ("fp32", "bf16"):
            step(dtype)  # warm-up: allocator and oneDNN caches
            start = time.perf_counter()
            for _ in range(steps):
                step(dtype)
            step_ms[dtype].append((time.perf_counter() - start) * 1000 / steps)  # without the profiler's overhead
            undo = _label_ranges(model, record_function)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(steps):
                    step(dtype)
            undo()
            for key, ms in _attribute(prof.events(), set(PROFILE_COMPONENTS)).items():
                totals[dtype][key] = totals[dtype].get(key, 0.0) + ms / (steps * rounds)
    table = {}
    for dtype, parts in totals.items():
        named = {k: v for k, v in parts.items() if not k.startswith("total ")}
        backward_rest = parts["total backward"] - sum(v for k, v in named.items() if k.endswith("| backward"))
        named["autograd engine overhead | backward"] = max(backward_rest, 0.0)
        forward_rest = parts["total forward"] - sum(v for k, v in named.items() if k.endswith("| forward"))
        named["losses, projections and glue | forward"] = forward_rest
        named["optimizer (AdamW step, zero_grad)"] = parts["total optimizer"]
        named["collator (tokenize, pad, mask reports)"] = parts["total collator"]
        total = sum(named.values())
        table[dtype] = {"ms_per_step_profiled": round(total, 1),
                        "ms_per_step_unprofiled": round(sorted(step_ms[dtype])[len(step_ms[dtype]) // 2], 1),
                        "parts_ms": {k: round(v, 2) for k, v in sorted(named.items(), key=lambda kv: -kv[1])},
                        "parts_share": {k: round(v / total, 4) for k, v in sorted(named.items(), key=lambda kv: -kv[1])}}
    return {"preset": preset, "design": design, "batch_size": batch_size, "steps_per_round": steps,
            "rounds": rounds, "threads": torch.get_num_threads(), "load_average_1min": round(os.getloadavg()[0], 2),
            "bf16_speedup": round(table["fp32"]["ms_per_step_unprofiled"] / table["bf16"]["ms_per_step_unprofiled"], 3),
            **table}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@functools.lru_cache(maxsize=1)
def _parts(preset: str, design: str, device: str):
    """A fresh model of `preset` on `device`, the collator and the sample training rows (kept for the next call
    with the same arguments: the largest-batch search reuses them)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        trainer, collator, train = build(preset, 1, 1, False, device == "cpu", tmp, 0, design)
    return trainer.model.to(device), collator, train


def model_step(preset: str, batch_size: int, design: str = "default", device: str = "cpu", reuse: bool = False):
    """The model, `step(module, dtype)` (forward with the loss, backward and a step of fused AdamW, the Trainer's
    default, in fp32 or bf16 autocast) and the one collated batch of `batch_size` on `device` it steps on. `reuse`
    takes the model of the last call with the same preset, design and device (its weights trained on)."""
    if not reuse:
        _parts.cache_clear()
    model, collator, train = _parts(preset, design, device)
    model = model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    examples = [train[i % len(train)] for i in range(batch_size)]
    batch = {k: v.to(device) for k, v in collator.mask_reports(collator(examples)).items()}

    def step(module, dtype: str) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = module(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return model, step, batch


PRECISION_CHECK_LOSSES = ("loss", "ecg_loss", "text_loss", "alignment_loss", "orthogonality_loss")


def precision_check(preset: str, batch_size: int, design: str = "default", device: str = "cpu") -> dict:
    """bf16 autocast against fp32 on one batch with the same ECG masks (training mode, SDPA): every loss
    component's relative difference, and the relative error `|bf16 - fp32| / |fp32|` (L2) of the shared embeddings
    (ECG and report), of the masked-ECG reconstructions and of the gradients of all parameters taken together."""
    model, _, batch = model_step(preset, batch_size, design, device)
    batch = dict(batch, noise=model.sample_noise(batch_size, torch.Generator().manual_seed(0)).to(device))
    outputs, grads = {}, {}
    for dtype in ("fp32", "bf16"):
        model.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            out = model(**batch)
        out.loss.backward()
        outputs[dtype] = out
        grads[dtype] = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
    def error(a: torch.Tensor, b: torch.Tensor) -> float:
        a, b = a.detach().float(), b.detach().float()
        return round(float((b - a).norm() / a.norm()), 5)

    fp32, bf16 = outputs["fp32"], outputs["bf16"]
    losses = {dtype: {k: float(out[k].detach()) for k in PRECISION_CHECK_LOSSES} for dtype, out in outputs.items()}
    return {"preset": preset, "design": design, "batch_size": batch_size, "device": device_name(device),
            "loss_relative_difference": {k: round(abs(losses["bf16"][k] - fp32) / max(abs(fp32), 1e-12), 5)
                                         for k, fp32 in losses["fp32"].items()},
            "relative_error": {"ecg_embeds": error(fp32.ecg_embeds, bf16.ecg_embeds),
                               "text_embeds": error(fp32.text_embeds, bf16.text_embeds),
                               "ecg_reconstruction": error(fp32.ecg_reconstruction, bf16.ecg_reconstruction),
                               "gradients": error(grads["fp32"], grads["bf16"])}}


def compile_comparison(preset: str, batch_size: int, steps: int, rounds: int, design: str = "default",
                       modes: Sequence[str] = MODES, device: str = "cpu") -> dict:
    """ms per model step (`model_step`: forward with the loss, backward, fused AdamW; one fixed collated batch),
    eager and/or `torch.compile`d (`modes`), fp32 and bf16 autocast, interleaved over `rounds`; the compile time
    (with the first step) measured separately, from an empty inductor cache (what a first run pays; later runs
    reuse the cache)."""
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
    model, step, _ = model_step(preset, batch_size, design, device)
    modules = {name: model if name == "eager" else torch.compile(model) for name in modes}
    compile_s = {}
    for dtype in ("fp32", "bf16"):
        if "compiled" in modules:
            start = time.perf_counter()
            step(modules["compiled"], dtype)  # compiles the graph of this dtype
            _sync(device)
            compile_s[dtype] = round(time.perf_counter() - start, 1)
            step(modules["compiled"], dtype)
        step(model, dtype)
    ms: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, module in modules.items():
            for dtype in ("fp32", "bf16"):
                _sync(device)
                start = time.perf_counter()
                for _ in range(steps):
                    step(module, dtype)
                _sync(device)
                ms.setdefault(f"{name} {dtype}", []).append(round((time.perf_counter() - start) * 1000 / steps, 1))
    median = {k: sorted(v)[len(v) // 2] for k, v in ms.items()}
    shutil.rmtree(os.environ.pop("TORCHINDUCTOR_CACHE_DIR"), ignore_errors=True)
    gains = {f"bf16_gain_{name}": round(median[f"{name} fp32"] / median[f"{name} bf16"], 3) for name in modules}
    if len(modules) == 2:
        gains["compiled_bf16_over_eager_fp32"] = round(median["eager fp32"] / median["compiled bf16"], 3)
    return {"preset": preset, "design": design, "batch_size": batch_size, "steps_per_round": steps, "rounds": rounds,
            "threads": torch.get_num_threads(), "device": device_name(device),
            "load_average_1min": round(os.getloadavg()[0], 2), "compile_and_first_step_s": compile_s,
            "ms_per_step": ms, "median_ms_per_step": median, **gains}


def fits(preset: str, batch_size: int, design: str = "default") -> tuple[bool, float]:
    """Whether a bf16 training step (`model_step`) of `batch_size` fits in GPU memory, and its peak GiB."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    try:
        model, step, _ = model_step(preset, batch_size, design, "cuda", reuse=True)
        step(model, "bf16")
        step(model, "bf16")  # the optimizer's state exists from the first step on
        _sync("cuda")
        return True, round(torch.cuda.max_memory_allocated() / 2**30, 2)
    except torch.cuda.OutOfMemoryError:
        return False, round(torch.cuda.max_memory_allocated() / 2**30, 2)
    finally:
        model = step = None  # noqa: F841  (the batch and the optimizer state go with the step)
        _parts(preset, design, "cuda")[0].zero_grad(set_to_none=True)  # a step cut short leaves gradients
        torch.cuda.empty_cache()


def largest_batch(preset: str, design: str = "default", start: int = 64, limit: int = 1 << 16,
                  check: Callable[[str, int, str], tuple[bool, float]] = fits) -> dict:
    """The largest batch whose bf16 training step fits: doubling from `start` until one does not fit (or
    `limit`), then bisecting to within 1/16 of the last that fit. `check(preset, batch, design)` says whether a
    batch fits and its peak memory in GiB."""
    tried: dict[int, tuple[bool, float]] = {}
    batch = start
    while batch <= limit and (tried.setdefault(batch, check(preset, batch, design)))[0]:
        batch *= 2
    good = max((b for b, (ok, _) in tried.items() if ok), default=0)
    bad = min((b for b, (ok, _) in tried.items() if not ok), default=None)
    while good and bad is not None and bad - good > max(good // 16, 1):
        middle = (good + bad) // 2
        ok, peak = tried.setdefault(middle, check(preset, middle, design))
        good, bad = (middle, bad) if ok else (good, middle)
    return {"preset": preset, "design": design, "largest_batch": good,
            "peak_memory_GiB": tried[good][1] if good else None,
            "first_batch_that_did_not_fit": bad, "tried": {str(b): {"fits": ok, "peak_GiB": peak}
                                                            for b, (ok, peak) in sorted(tried.items())}}


def print_profile(result: dict) -> None:
    keys = list(result["fp32"]["parts_ms"])
    print(f"{'part':45s} | {'fp32 ms':>8} | {'share':>6} | {'bf16 ms':>8} | {'share':>6} | {'bf16 gain':>9}")
    for key in keys:
        f, b = result["fp32"]["parts_ms"][key], result["bf16"]["parts_ms"].get(key, 0.0)
        print(f"{key:45s} | {f:8.2f} | {result['fp32']['parts_share'][key]:6.1%} | {b:8.2f} | "
              f"{result['bf16']['parts_share'].get(key, 0.0):6.1%} | {f / b if b else float('nan'):8.2f}x")
    print(f"step (unprofiled median): fp32 {result['fp32']['ms_per_step_unprofiled']} ms, bf16 "
          f"{result['bf16']['ms_per_step_unprofiled']} ms, bf16 speed-up {result['bf16_speedup']}x "
          f"(load {result['load_average_1min']})")


# Attention-logit shapes of the `small` step at batch 16: decoder spatial (12 leads) and temporal (40 patches)
# groups, the report encoders (61 tokens) and the ECG encoder's visible tokens (120).
SOFTMAX_SHAPES = ((640, 4, 12, 12), (192, 4, 40, 40), (16, 4, 61, 61), (16, 4, 120, 120))


def softmax_paths(repeats: int = 40) -> list[dict]:
    """µs per softmax of bf16 attention logits (best of 3 loops of `repeats`) by the paths `_half_precision_softmax`
    chooses between, and the bf16-output kernel, for the step's shapes: which is fastest depends on the row length.
    glibc maps large blocks afresh (and pages them in again) until frees raise its mmap threshold, which swamps
    these figures (up to 5x, depending on what ran before), so this mode first raises the threshold to 32 MiB and
    the trim threshold to 1 GiB (`mallopt`): the kernels' own speed. In the training step some of those faults
    remain either way (tuning the allocator there gave no measurable gain)."""
    import torch.nn.functional as F

    from cgdmer_hf.modeling_cgdmer import _softmax_exp_sum, _softmax_kernel

    paths = {"kernel, bf16 out": lambda x: F.softmax(x, -1), "kernel, fp32 out": _softmax_kernel,
             "exp and sum in fp32": _softmax_exp_sum}
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if sys.platform.startswith("linux") else None
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD, glibc's largest on 64-bit systems
        libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD
    inputs = [torch.randn(shape).bfloat16() for shape in SOFTMAX_SHAPES]
    for x, path in itertools.product(inputs, paths.values()):
        path(x)  # warm-up
    rows = []
    for x in inputs:
        row = {"shape": list(x.shape)}
        for name, path in paths.items():
            loops = []
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(repeats):
                    path(x)
                loops.append((time.perf_counter() - start) / repeats * 1e6)
            row[name] = round(min(loops), 1)
        rows.append(row)
        print(" | ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return rows


def write_result(output: str, **parts) -> None:
    """Update `parts` in the JSON result (the other modes' results in it are kept; a part `None` is removed)."""
    path = Path(output)
    result = json.loads(path.read_text()) if path.exists() else {"benchmark": "pretrain"}
    result.update(parts)
    result = {k: v for k, v in result.items() if v is not None}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"Wrote {output} ({', '.join(parts)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=None, help="default: small on CPU, small and base on GPU")
    parser.add_argument("--batch-size", type=int, default=None, help="per step (default 16 on CPU, 128 on GPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10 on CPU, 50 on GPU)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--cpu", action="store_true", help="benchmark the CPU even when a GPU is present")
    parser.add_argument("--threads", type=int, nargs="+", default=[None],
                        help="CPU thread counts, one row each (default: torch's default)")
    parser.add_argument("--fp32", action="store_true", help="no bf16 on the GPU")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=None,
                        help="Trainer rows: the precisions to time, interleaved (default: bf16 on a GPU, fp32 on the "
                             "CPU; bf16 on the CPU is autocast)")
    parser.add_argument("--num-workers", type=int, default=None,
                        help="data loader workers (default 4 on GPU, where one process cannot feed it, 0 on CPU)")
    parser.add_argument("--designs", nargs="+", choices=list(DESIGNS), default=["default"],
                        help="ECG tower designs to time: the defaults and/or v0.1's joint attention")
    parser.add_argument("--profile", action="store_true",
                        help="CPU: instead of Trainer throughput, the time share of each part of the step, fp32 and "
                             "bf16 autocast interleaved (written under 'profile' in the JSON)")
    parser.add_argument("--compile", action="store_true",
                        help="instead of Trainer throughput, the model step eager against torch.compile, fp32 and "
                             "bf16 autocast interleaved, on the GPU when there is one (written under 'compile')")
    parser.add_argument("--precision-check", action="store_true",
                        help="bf16 autocast against fp32 on one batch (losses, embeddings, reconstructions, "
                             "gradients), on the GPU when there is one (written under 'precision_check')")
    parser.add_argument("--max-batch", action="store_true",
                        help="GPU: the largest batch whose bf16 training step fits, per preset (written under "
                             "'max_batch' in the JSON)")
    parser.add_argument("--softmax", action="store_true",
                        help="CPU: µs per bf16 attention softmax by each path of the half-precision attention, for "
                             "the step's shapes (written under 'softmax' in the JSON)")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                        help="--compile: the modes to time (eager only skips the compile)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved rounds (default 3 with --profile / --compile, 1 for Trainer rows)")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    import tempfile

    import cgdmer_hf  # noqa: F401  (registration)


    cuda = torch.cuda.is_available() and not args.cpu
    device = "cuda" if cuda else "cpu"
    if args.compile:
        if args.threads[0]:
            torch.set_num_threads(args.threads[0])
        comparisons = [compile_comparison(p, args.batch_size or (128 if cuda else 16),
                                          args.steps or (20 if cuda else 5), args.rounds or 3, args.designs[0],
                                          args.modes, device)
                       for p in args.presets or (["small", "base"] if cuda else ["small"])]
        for c in comparisons:
            gains = ", ".join(f"{k.removeprefix('bf16_gain_')} {v}x" for k, v in c.items()
                              if k.startswith("bf16_gain_"))
            print(f"{c['preset']}: median ms/step {c['median_ms_per_step']}; bf16 gain {gains}; compiled bf16 over "
                  f"eager fp32 {c.get('compiled_bf16_over_eager_fp32', 'n/a')}x; compile "
                  f"{c['compile_and_first_step_s']} s (load {c['load_average_1min']})")
        write_result(args.output, compile=comparisons)
        return
    if args.precision_check:
        checks = [precision_check(p, args.batch_size or 16, d, device)
                  for p in args.presets or (["small", "base"] if cuda else ["small"]) for d in args.designs]
        for c in checks:
            print(f"{c['preset']} | {c['design']} | {c['device']}: bf16 vs fp32 loss relative difference "
                  f"{c['loss_relative_difference']}; relative error {c['relative_error']}")
        write_result(args.output, precision_check=checks)
        return
    if args.max_batch:
        if not cuda:
            parser.error("--max-batch needs a GPU (on the CPU the step would swap before it failed)")
        found = [largest_batch(p, d) for p in args.presets or ["small", "base"] for d in args.designs]
        for f in found:
            print(f"{f['preset']} | {f['design']}: largest bf16 batch that fits {f['largest_batch']} "
                  f"(peak {f['peak_memory_GiB']} GiB); {f['first_batch_that_did_not_fit']} did not fit")
        write_result(args.output, max_batch=[dict(f, device=device_name("cuda")) for f in found])
        return
    if args.softmax:
        if args.threads[0]:
            torch.set_num_threads(args.threads[0])
        write_result(args.output, softmax={"threads": torch.get_num_threads(), "us_per_call": softmax_paths(),
                                           "load_average_1min": round(os.getloadavg()[0], 2)})
        return
    if args.profile:
        if args.threads[0]:
            torch.set_num_threads(args.threads[0])
        profiles = []
        for preset in args.presets or ["small"]:
            profiles.append(profile_step(preset, args.batch_size or 16, args.steps or 3, args.rounds or 3,
                                         args.designs[0]))
            print_profile(profiles[-1])
        write_result(args.output, profile=profiles)
        return
    presets = args.presets or (["small", "base"] if cuda else ["small"])
    batch_size = args.batch_size or (128 if cuda else 16)
    steps = args.steps or (50 if cuda else 10)
    precisions = args.precisions or (["fp32"] if args.fp32 or not cuda else ["bf16"])
    load_before = os.getloadavg()[0]
    rows = []
    combinations = [(p, d, t) for p in presets for d in args.designs for t in args.threads]
    for _, (preset, design, threads), precision in itertools.product(range(args.rounds or 1), combinations, precisions):
        if threads:
            torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(run(preset, batch_size, steps, args.warmup, bf16=precision == "bf16", use_cpu=not cuda,
                            out_dir=tmp, num_workers=args.num_workers if args.num_workers is not None else
                            (4 if cuda else 0), design=design))
        row = rows[-1]
        print(f"{row['preset']:>6} | {row['design']:>7} | batch {row['batch_size']:>4} | {row['precision']} | {row['pairs_per_s']:>9.2f} "
              f"pairs/s | peak {row['peak_memory_MiB']:>9.1f} MiB | {row['gflop_per_pair']:.3f} GFLOP/pair | "
              f"{row['achieved_tflop_s']:.4f} TFLOP/s | MFU {row['mfu'] if row['mfu'] is not None else 'n/a'} | "
              f"{row['device']}", flush=True)
    gains = bf16_gains(rows)
    for key, gain in gains.items():
        print(f"bf16 over fp32, median pairs/s of the rounds, {key}: {gain}x")
    # Other processes on the machine slow a CPU run down: the load average is recorded with the result.
    write_result(args.output, torch=torch.__version__, cpu_count=os.cpu_count(), rows=rows, bf16_gain=gains or None,
                 load_average_1min={"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)})


if __name__ == "__main__":
    main()
