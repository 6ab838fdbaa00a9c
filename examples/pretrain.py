"""Pretrain CG-DMER with the transformers Trainer, from Python.

One process (CPU or one GPU), on the bundled PTB-XL sample:

    python examples/pretrain.py --output-dir runs/cgdmer-tiny --preset tiny --max-steps 60

On a PTB-XL folder (strat_fold 1-8 train, fold 9 validation), several GPUs of one machine (DDP):

    torchrun --nproc_per_node 4 examples/pretrain.py --data-dir /data/ptb-xl --preset small --output-dir runs/small

Several machines: the usual torchrun arguments on every node, e.g. on 2 nodes of 8 GPUs (node rank 0 and 1):

    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint HOST0:29500 \\
        examples/pretrain.py --data-dir /shared/ptb-xl --preset base --output-dir /shared/runs/base --bf16

Resume an interrupted run with `--resume` (the last checkpoint in --output-dir). The output folder then holds a
complete model: `AutoModel.from_pretrained(out)`, `AutoProcessor.from_pretrained(out)` and
`pipeline("zero-shot-ecg-classification", model=out, trust_remote_code=True)`.
The `cgdmer pretrain` command does the same with more options (config files, MIMIC-IV-ECG, prepared datasets).
"""

from __future__ import annotations

import argparse

from cgdmer_hf.data import load_ptbxl
from cgdmer_hf.samples import sample_data_dir
from cgdmer_hf.training import pretrain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="PTB-XL folder (default: the bundled 50-record sample)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--preset", default="tiny", choices=("tiny", "small", "base"))
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8, help="per device")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--bf16", action="store_true", help="bf16 mixed precision (default: on supporting GPUs)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    args = parser.parse_args()

    root = args.data_dir or sample_data_dir()
    train = load_ptbxl(root, split="train")
    validation = load_ptbxl(root, split="validation")
    steps = args.max_steps
    trainer = pretrain(
        train,
        args.output_dir,
        eval_dataset=validation,
        config=args.preset,
        tokenizer="default" if args.data_dir is None else None,  # the bundled tokenizer, or one trained on `train`
        zero_shot_prompts="auto",  # zero-shot macro AUC on the validation split at each evaluation
        resume_from_checkpoint=True if args.resume else None,
        training_args=dict(
            max_steps=steps, per_device_train_batch_size=args.batch_size, learning_rate=args.learning_rate,
            logging_steps=max(1, steps // 10), eval_strategy="steps", eval_steps=max(1, steps // 3),
            save_steps=max(1, steps // 3), **({"bf16": True} if args.bf16 else {}),
        ),
    )
    if trainer.is_world_process_zero():
        last = [h for h in trainer.state.log_history if "eval_loss" in h][-1]
        print(f"Saved to {args.output_dir}; last evaluation: " + ", ".join(f"{k}={v:.4g}" for k, v in last.items()))


if __name__ == "__main__":
    main()
