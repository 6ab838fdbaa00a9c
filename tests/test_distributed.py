"""Two CPU processes with the gloo backend: the all-gathered SigLIP loss and a 2-process pretraining run."""

import json
import os
import socket
import subprocess
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cgdmer_hf.modeling_cgdmer import sigmoid_contrastive_loss

WORLD, LOCAL_BATCH, DIM = 2, 3, 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _full_batch():
    gen = torch.Generator().manual_seed(0)
    ecg = torch.nn.functional.normalize(torch.randn(WORLD * LOCAL_BATCH, DIM, generator=gen), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(WORLD * LOCAL_BATCH, DIM, generator=gen), dim=-1)
    return ecg, text, torch.tensor(1.5), torch.tensor(-2.0)


# Report keys (`report_keys`): rows 0 and 4 (one on each process) and rows 1 and 2 are the same report.
KEYS = torch.tensor([[4, 5, -1], [6, -1, -1], [6, -1, -1], [7, 8, 9], [4, 5, -1], [3, -1, -1]])


def _both_losses(ecg, text, scale, bias, keys):
    """The diagonal SigLIP loss plus the identical-reports one (so that one run checks both gathers)."""
    return sigmoid_contrastive_loss(ecg, text, scale, bias) + sigmoid_contrastive_loss(ecg, text, scale, bias, keys)


def _siglip_worker(rank: int, port: int, result_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        ecg, text, scale, bias = _full_batch()
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        ecg, text = ecg[rows].clone().requires_grad_(), text[rows].clone().requires_grad_()
        scale, bias = scale.clone().requires_grad_(), bias.clone().requires_grad_()
        loss = _both_losses(ecg, text, scale, bias, KEYS[rows])
        loss.backward()
        # What DDP does: average the losses and the parameter gradients over the processes.
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        params = torch.stack([scale.grad, bias.grad])
        dist.all_reduce(params)
        grads = [torch.zeros(WORLD * LOCAL_BATCH, DIM) for _ in range(2)]
        for full, local in zip(grads, (ecg.grad, text.grad)):
            parts = [torch.zeros_like(local) for _ in range(WORLD)]
            dist.all_gather(parts, local)
            full.copy_(torch.cat(parts))
        if rank == 0:
            torch.save({"loss": mean_loss / WORLD, "params": params / WORLD, "ecg": grads[0] / WORLD,
                        "text": grads[1] / WORLD}, result_file)
    finally:
        dist.destroy_process_group()


def test_all_gathered_siglip_loss_equals_the_concatenated_batch_loss(tmp_path):
    result_file = str(tmp_path / "result.pt")
    mp.spawn(_siglip_worker, args=(_free_port(), result_file), nprocs=WORLD, join=True)
    got = torch.load(result_file)

    ecg, text, scale, bias = (t.clone().requires_grad_() for t in _full_batch())
    loss = _both_losses(ecg, text, scale, bias, KEYS)  # no process group: one process, whole batch
    loss.backward()
    torch.testing.assert_close(got["loss"], loss.detach())
    torch.testing.assert_close(got["params"], torch.stack([scale.grad, bias.grad]))
    torch.testing.assert_close(got["ecg"], ecg.grad)
    torch.testing.assert_close(got["text"], text.grad)


def test_two_process_pretraining_saves_a_loadable_model(tmp_path):
    from transformers import AutoModel, AutoProcessor

    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
           "-m", "cgdmer_hf.cli", "pretrain", "--data", "sample", "--preset", "tiny", "--tokenizer", "default",
           "--output-dir", str(out), "--max-steps", "4", "--batch-size", "4", "--logging-steps", "2",
           "--eval-steps", "4", "--save-steps", "4", "--zero-shot", "none", "--cpu", "--disable-tqdm"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    train_logs = [h for h in state["log_history"] if "loss" in h]
    assert train_logs and all("alignment_loss" in h for h in train_logs)
    assert any("eval_loss" in h for h in state["log_history"])
    args = torch.load(out / "training_args.bin", weights_only=False)
    assert args.world_size == WORLD
    model, processor = AutoModel.from_pretrained(out), AutoProcessor.from_pretrained(out)
    assert model.config.text_config.vocab_size == len(processor.tokenizer)



_STREAM_SCRIPT = r'''
import json, os, sys
import torch
from cgdmer_hf.data import load_ptbxl
from cgdmer_hf.samples import sample_data_dir
from cgdmer_hf import training

seen = []
collate = training.CGDMERPretrainingCollator.__call__


def recording(self, examples):
    seen.extend(round(float(torch.as_tensor(e["ecg_values"]).abs().sum()), 3) for e in examples)
    return collate(self, examples)


training.CGDMERPretrainingCollator.__call__ = recording
# 30 records in 3 shards: one process streams 20 records, the other 10, so the shorter stream must repeat.
stream = load_ptbxl(sample_data_dir(), split="train").to_iterable_dataset(num_shards=3)
out = sys.argv[1]
trainer = training.pretrain(stream, out, config="tiny", tokenizer="default", training_args=dict(
    max_steps=6, per_device_train_batch_size=4, logging_steps=3, save_steps=6, use_cpu=True, disable_tqdm=True))
with open(os.path.join(out, f"seen_{trainer.args.process_index}.json"), "w") as f:
    json.dump({"seen": seen, "steps": trainer.state.global_step}, f)
'''


def test_two_process_streaming_is_split_per_process(tmp_path):
    script, out = tmp_path / "stream.py", tmp_path / "stream"
    script.write_text(_STREAM_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}", str(script),
           str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"seen_{rank}.json").read_text()) for rank in range(WORLD)]
    assert all(r["steps"] == 6 for r in ranks)
    seen = [set(r["seen"]) for r in ranks]
    assert seen[0] and seen[1] and not seen[0] & seen[1]  # each process reads its own records
    assert len(ranks[1]["seen"]) >= 24 and len(seen[1]) == 10  # the 10-record stream repeated for 6 steps of 4
