"""Pretraining throughput: ECG-report pairs per second, peak memory and (on a GPU) model FLOPs utilisation.

Runs the real training path (`CGDMERPretrainer`: collator with tokenization, model, AdamW, scheduler) on the
bundled PTB-XL sample (30 training records, repeated to fill the batches) for `--warmup` + `--steps` optimizer
steps and times the last `--steps`.

    python benchmarks/bench_pretrain.py                          # CPU: small, float32
    python benchmarks/bench_pretrain.py --presets small base     # GPU: bf16 by default, MFU against the bf16 peak
    python benchmarks/bench_pretrain.py --designs default v0.1   # the divided-attention design against v0.1
    python benchmarks/bench_pretrain.py --profile --threads 2    # where the step's time goes, fp32 and bf16
    python benchmarks/bench_pretrain.py --compile --threads 2    # eager against torch.compile, fp32 and bf16

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
import json
import os
import platform
import resource
import shutil
import time
from pathlib import Path

import torch

from cgdmer_hf.configuration_cgdmer import LEGACY_DEFAULTS

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets.
BF16_PEAK = {"H200": 989.4e12, "H100 SXM": 989.4e12, "H100 80GB HBM3": 989.4e12, "H100 PCIe": 756.0e12,
             "H100 NVL": 835.0e12, "H100": 989.4e12, "A100": 312.0e12}
RESULTS = Path(__file__).resolve().parent / "results" / "bench_pretrain.json"
# ECG tower designs to compare: today's defaults and v0.1's joint attention without routing.
DESIGNS = {"default": {}, "v0.1": LEGACY_DEFAULTS}


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
    """FLOPs of one forward + backward pass per ECG-report pair, counted on one batch."""
    from torch.utils.flop_counter import FlopCounterMode

    batch = collator.mask_reports(collator([dataset[i] for i in range(batch_size)]))
    model = trainer.model.to(trainer.args.device).train()
    batch = {k: v.to(trainer.args.device) for k, v in batch.items()}
    dtype = torch.bfloat16 if trainer.args.bf16 else None
    with FlopCounterMode(display=False) as counter:
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
        name = torch.cuda.get_device_name()
        peak = device_peak(name)
        row.update(device=name, peak_memory_MiB=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                   mfu=round(flops * pairs_per_s / peak, 4) if peak and bf16 else None)
    else:
        row.update(device=f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
                   peak_memory_MiB=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                   peak_memory_kind="process peak RSS (over this and earlier rows)", mfu=None)
    return row


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
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
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
            undo = _label_ranges(model, record_function)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                start = time.perf_counter()
                for _ in range(steps):
                    step(dtype)
                step_ms[dtype].append((time.perf_counter() - start) * 1000 / steps)
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


def compile_comparison(preset: str, batch_size: int, steps: int, rounds: int, design: str = "default") -> dict:
    """ms per model step (forward with the loss, backward, AdamW; one fixed collated batch), eager and
    `torch.compile`d, fp32 and bf16 autocast, interleaved over `rounds`; the compile time (with the first step)
    measured separately, from an empty inductor cache (what a first run pays; later runs reuse the cache)."""
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
    with tempfile.TemporaryDirectory() as tmp:
        trainer, collator, train = build(preset, batch_size, steps, False, True, tmp, 0, design)
    model = trainer.model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = collator.mask_reports(collator([train[i] for i in range(batch_size)]))
    compiled = torch.compile(model)
    device = next(model.parameters()).device.type

    def step(module, dtype: str) -> None:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            loss = module(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    compile_s = {}
    for dtype in ("fp32", "bf16"):
        start = time.perf_counter()
        step(compiled, dtype)  # compiles the graph of this dtype
        compile_s[dtype] = round(time.perf_counter() - start, 1)
        step(compiled, dtype)
        step(model, dtype)
    ms: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, module in (("eager", model), ("compiled", compiled)):
            for dtype in ("fp32", "bf16"):
                start = time.perf_counter()
                for _ in range(steps):
                    step(module, dtype)
                ms.setdefault(f"{name} {dtype}", []).append(round((time.perf_counter() - start) * 1000 / steps, 1))
    median = {k: sorted(v)[len(v) // 2] for k, v in ms.items()}
    shutil.rmtree(os.environ.pop("TORCHINDUCTOR_CACHE_DIR"), ignore_errors=True)
    return {"preset": preset, "design": design, "batch_size": batch_size, "steps_per_round": steps, "rounds": rounds,
            "threads": torch.get_num_threads(), "device": device, "load_average_1min": round(os.getloadavg()[0], 2),
            "compile_and_first_step_s": compile_s, "ms_per_step": ms, "median_ms_per_step": median,
            "bf16_gain_eager": round(median["eager fp32"] / median["eager bf16"], 3),
            "bf16_gain_compiled": round(median["compiled fp32"] / median["compiled bf16"], 3),
            "compiled_bf16_over_eager_fp32": round(median["eager fp32"] / median["compiled bf16"], 3)}


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
    parser.add_argument("--num-workers", type=int, default=None,
                        help="data loader workers (default 4 on GPU, where one process cannot feed it, 0 on CPU)")
    parser.add_argument("--designs", nargs="+", choices=list(DESIGNS), default=["default"],
                        help="ECG tower designs to time: the defaults and/or v0.1's joint attention")
    parser.add_argument("--profile", action="store_true",
                        help="CPU: instead of Trainer throughput, the time share of each part of the step, fp32 and "
                             "bf16 autocast interleaved (written under 'profile' in the JSON)")
    parser.add_argument("--compile", action="store_true",
                        help="CPU: instead of Trainer throughput, the model step eager against torch.compile, fp32 "
                             "and bf16 autocast interleaved (written under 'compile' in the JSON)")
    parser.add_argument("--rounds", type=int, default=3, help="--profile / --compile: interleaved rounds")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    import tempfile

    import cgdmer_hf  # noqa: F401  (registration)


    cuda = torch.cuda.is_available() and not args.cpu
    if args.compile:
        if args.threads[0]:
            torch.set_num_threads(args.threads[0])
        comparisons = [compile_comparison(p, args.batch_size or 16, args.steps or 5, args.rounds, args.designs[0])
                       for p in args.presets or ["small"]]
        for c in comparisons:
            print(f"{c['preset']}: median ms/step {c['median_ms_per_step']}; bf16 gain eager {c['bf16_gain_eager']}x, "
                  f"compiled {c['bf16_gain_compiled']}x; compiled bf16 over eager fp32 "
                  f"{c['compiled_bf16_over_eager_fp32']}x; compile {c['compile_and_first_step_s']} s "
                  f"(load {c['load_average_1min']})")
        path = Path(args.output)
        result = json.loads(path.read_text()) if path.exists() else {"benchmark": "pretrain"}
        result["compile"] = comparisons
        path.write_text(json.dumps(result, indent=2))
        print(f"Wrote {args.output} (compile)")
        return
    if args.profile:
        if args.threads[0]:
            torch.set_num_threads(args.threads[0])
        profiles = []
        for preset in args.presets or ["small"]:
            profiles.append(profile_step(preset, args.batch_size or 16, args.steps or 3, args.rounds, args.designs[0]))
            print_profile(profiles[-1])
        path = Path(args.output)
        result = json.loads(path.read_text()) if path.exists() else {"benchmark": "pretrain"}
        result["profile"] = profiles
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        print(f"Wrote {args.output} (profile)")
        return
    presets = args.presets or (["small", "base"] if cuda else ["small"])
    batch_size = args.batch_size or (128 if cuda else 16)
    steps = args.steps or (50 if cuda else 10)
    load_before = os.getloadavg()[0]
    rows = []
    for preset, design, threads in ((p, d, t) for p in presets for d in args.designs for t in args.threads):
        if threads:
            torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(run(preset, batch_size, steps, args.warmup, bf16=cuda and not args.fp32, use_cpu=not cuda,
                            out_dir=tmp, num_workers=args.num_workers if args.num_workers is not None else
                            (4 if cuda else 0), design=design))
        row = rows[-1]
        print(f"{row['preset']:>6} | {row['design']:>7} | batch {row['batch_size']:>4} | {row['precision']} | {row['pairs_per_s']:>9.2f} "
              f"pairs/s | peak {row['peak_memory_MiB']:>9.1f} MiB | {row['gflop_per_pair']:.3f} GFLOP/pair | "
              f"{row['achieved_tflop_s']:.4f} TFLOP/s | MFU {row['mfu'] if row['mfu'] is not None else 'n/a'} | "
              f"{row['device']}")
    # Other processes on the machine slow a CPU run down: the load average is recorded with the result.
    result = {"benchmark": "pretrain", "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
              "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"Wrote {args.output}")


if __name__ == "__main__":
    main()
