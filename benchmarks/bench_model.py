"""Model benchmark: parameter counts, pretraining forward+backward pairs/s and peak memory on this machine.

    python benchmarks/bench_model.py [--presets small base] [--batch-size 8] [--steps 5] [--pipeline]

Prints a table and writes benchmarks/results/bench_model.json. Synthetic inputs (random ECGs and token ids):
this measures the model's compute only; preprocessing and data loading have their own benchmarks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path

import torch

from cgdmer_hf import CGDMERConfig, CGDMERForPreTraining

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def inference_rate(model: torch.nn.Module, config, device: str, batch: int = 64, repeats: int = 3) -> float:
    """ECGs/s of `get_ecg_features` (all 12 leads x 10 s, no masking: what the pipeline and probes run)."""
    ecg = torch.randn(batch, 12, config.ecg_config.num_samples, device=device)
    model.get_ecg_features(ecg)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        model.get_ecg_features(ecg)
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - start)


def pipeline_rate(preset: str, batch: int = 16, n: int = 128, repeats: int = 2) -> dict:
    """ECGs/s of `pipeline("zero-shot-ecg-classification")` end to end (WFDB file -> feature extractor -> model ->
    ranked PTB-XL super labels with the shipped prompt ensemble), on the bundled 100 Hz sample records repeated to
    `n`, `batch` ECGs per model call; a randomly initialised `preset` model (speed does not depend on weights)."""
    import tempfile

    from transformers import pipeline

    from cgdmer_hf import CGDMERModel, CGDMERProcessor, load_prompt_set
    from cgdmer_hf.feature_extraction_cgdmer import CGDMERFeatureExtractor
    from cgdmer_hf.reports import load_default_tokenizer
    from cgdmer_hf.samples import load_sample_index, sample_record_path

    tokenizer = load_default_tokenizer()
    config = CGDMERConfig.from_preset(preset, text_config=dict(vocab_size=len(tokenizer)))
    paths = [sample_record_path(r["ecg_id"], 100) for r in load_sample_index()]
    paths = (paths * (n // len(paths) + 1))[:n]
    labels = load_prompt_set("ptbxl_super")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        CGDMERModel(config).save_pretrained(tmp)
        CGDMERProcessor(CGDMERFeatureExtractor(), tokenizer).save_pretrained(tmp)
        pipe = pipeline("zero-shot-ecg-classification", model=tmp, device="cpu")
        pipe(paths[:batch], candidate_labels=labels, batch_size=batch)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out = pipe(paths, candidate_labels=labels, batch_size=batch)
            times.append(time.perf_counter() - start)
    assert len(out) == n
    return {"preset": preset, "batch": batch, "ecgs": n, "pipeline_ecgs_per_s": round(n / min(times), 1),
            "threads": torch.get_num_threads()}


def bench(preset: str, batch: int, steps: int, text_len: int, device: str) -> dict:
    torch.manual_seed(0)
    config = CGDMERConfig.from_preset(preset)
    model = CGDMERForPreTraining(config).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ecg = torch.randn(batch, 12, config.ecg_config.num_samples, device=device)
    ids = torch.randint(5, config.text_config.vocab_size, (batch, text_len), device=device)
    labels = torch.where(torch.rand(ids.shape, device=device) < 0.15, ids, torch.full_like(ids, -100))
    inputs = dict(ecg_values=ecg, input_ids=ids, mlm_input_ids=ids.masked_fill(labels != -100, 4), mlm_labels=labels)
    rss_before = peak_rss_mib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model(**inputs).loss.backward()
        opt.step()

    step()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    infer_per_s = inference_rate(model.cgdmer.eval(), config, device)
    ecg_cfg = config.ecg_config
    tokens = ecg_cfg.num_leads * ecg_cfg.num_patches
    return {
        "preset": preset,
        "params_total_M": round(count(model) / 1e6, 2),
        "params_ecg_encoder_M": round(count(model.cgdmer.ecg_model) / 1e6, 2),
        "params_text_encoder_M": round(count(model.cgdmer.text_model) / 1e6, 2),
        "batch": batch,
        "ecg_tokens": tokens,
        "visible_ecg_tokens": tokens - round(ecg_cfg.mask_ratio * tokens),
        "text_tokens": text_len,
        "pairs_per_s": round(batch * steps / elapsed, 2),
        "s_per_step": round(elapsed / steps, 3),
        "inference_ecgs_per_s": round(infer_per_s, 1),
        "peak_memory_MiB": round(torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else peak_rss_mib(), 1),
        "peak_rss_before_MiB": round(rss_before, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["small", "base"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--text-length", type=int, default=48)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pipeline", action="store_true",
                        help="also time the zero-shot pipeline end to end (CPU, batch 16, bundled records)")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = [bench(p, args.batch_size, args.steps, args.text_length, args.device) for p in args.presets]
    pipelines = [pipeline_rate(p) for p in args.presets if p != "base"] if args.pipeline else []
    for row in pipelines:
        print(f"pipeline {row['preset']}: {row['pipeline_ecgs_per_s']} ECGs/s (batch {row['batch']}, "
              f"{row['threads']} threads, files to ranked labels)")
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    machine = (torch.cuda.get_device_name() if args.device == "cuda"
               else f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    cols = ["preset", "params_total_M", "params_ecg_encoder_M", "params_text_encoder_M", "batch", "ecg_tokens",
            "visible_ecg_tokens", "text_tokens", "pairs_per_s", "s_per_step", "inference_ecgs_per_s",
            "peak_memory_MiB"]
    print(f"\nForward+backward+AdamW pretraining steps, fp32, {machine}, 1-min load average {load}\n")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in cols) + " |")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench_model.json"
    out.write_text(json.dumps({"machine": machine, "torch": torch.__version__, "load_average_1min": load, "rows": rows,
                               "pipeline": pipelines}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
