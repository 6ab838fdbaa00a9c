"""Quick start: zero-shot diagnosis of a bundled real ECG (filled in as the pipeline lands)."""

import torch

import cgdmer_hf
from cgdmer_hf import CGDMERConfig, CGDMERModel

model = CGDMERModel(CGDMERConfig.from_preset("tiny")).eval()
print(model.get_ecg_features(torch.randn(1, 12, 1000)).shape)
