"""PyTorch CG-DMER: spatial-temporal masked ECG modeling, masked report modeling and disentangled
modality-shared / modality-specific representations aligned with a sigmoid (SigLIP) loss."""

from __future__ import annotations

import collections
import functools
import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, logging
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_cgdmer import MASKING_STRATEGIES, CGDMERConfig, CGDMEREcgConfig, CGDMERTextConfig

logger = logging.get_logger(__name__)

ZERO_SHOT_CENTRE_ECGS = 2048  # training ECGs averaged into the zero-shot centre offset (a mean of similarities)
ZERO_SHOT_BANK_SIZE = 2000  # most frequent distinct pretraining reports kept as the zero-shot report bank
ZERO_SHOT_MATCH_POWER = 2.0  # bank weight = count * (matched share of a description)**power; chosen on fold 9


def description_words(text: str) -> frozenset[str]:
    """The words a zero-shot description is matched to bank reports by: lower-cased alphanumeric runs of two or
    more characters, a final "s" of a word longer than three dropped ("changes" and "change" match). (Not
    `cgdmer_hf.reports.report_words`, the letter-only words that measure the phrase table's coverage.)"""
    words = (w for w in re.findall(r"[^\W_]+", unicodedata.normalize("NFC", text).lower()) if len(w) > 1)
    return frozenset(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words)


@functools.lru_cache(maxsize=4)
def _bank_index(bank: tuple[tuple[str, int], ...]) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, float]]:
    """The report counts of a bank (`(text, count)` pairs), the rows of the reports holding each word and each
    word's idf `log(total count / count of the reports holding it)`; kept for the next call with the same bank."""
    counts = torch.tensor([count for _, count in bank], dtype=torch.float64)
    rows: dict[str, list[int]] = collections.defaultdict(list)
    for row, (text, _) in enumerate(bank):
        for word in description_words(text):
            rows[word].append(row)
    postings = {word: torch.tensor(held) for word, held in rows.items()}
    total = float(counts.sum())
    return counts, postings, {word: math.log(total / float(counts[held].sum())) for word, held in postings.items()}


def report_bank_weights(bank: dict[str, int], descriptions: Sequence[str], power: float = ZERO_SHOT_MATCH_POWER
                        ) -> torch.Tensor:
    """`(len(descriptions), len(bank))` float64 weights of the bank reports for each description: a report's
    count times `(idf of the description words it holds / idf of the description words in the bank) ** power`,
    an idf being `log(total count / count of the reports holding the word)`. A row is all zero when no word of
    its description is in the bank (or only words every report holds)."""
    counts, postings, idf = _bank_index(tuple(bank.items()))
    weights = torch.zeros(len(descriptions), len(bank), dtype=torch.float64)
    for row, description in enumerate(descriptions):
        words = [w for w in description_words(description) if w in idf]
        information = sum(idf[w] for w in words)
        if information <= 0:
            continue
        matched = torch.zeros(len(bank), dtype=torch.float64)
        for word in words:
            matched[postings[word]] += idf[word]
        weights[row] = counts * (matched / information) ** power
    return weights


@dataclass
class ZeroShotLabels:
    """Zero-shot labels as [`CGDMERModel.zero_shot_logits`] scores them ([`CGDMERModel.zero_shot_labels`]).

    Args:
        embeds: `(labels, projection_dim)` normalised label embeddings (`zero_shot_label_embeddings`); they score
            the labels without bank weights.
        bank_weights: `(labels, bank)` float64 weights of the report bank's reports for each label: the mean of
            `report_bank_weights` over its descriptions that share a word with the bank, a row of zeros when none
            does. `None` without a bank.
        bank_embeds: `(bank, projection_dim)` float64 normalised embeddings of the bank's reports.
        bank_counts: `(bank,)` float64 counts of the bank's reports.
    """

    embeds: torch.Tensor
    bank_weights: Optional[torch.Tensor] = None
    bank_embeds: Optional[torch.Tensor] = None
    bank_counts: Optional[torch.Tensor] = None

    def __post_init__(self):
        if self.bank_weights is None:
            return
        if self.bank_embeds is None or self.bank_counts is None:
            raise ValueError("ZeroShotLabels with bank_weights need bank_embeds and bank_counts")
        shapes = {"embeds": tuple(self.embeds.shape), "bank_weights": tuple(self.bank_weights.shape),
                  "bank_embeds": tuple(self.bank_embeds.shape), "bank_counts": tuple(self.bank_counts.shape)}
        labels, bank = shapes["bank_weights"] if len(shapes["bank_weights"]) == 2 else (None, None)
        if (labels != len(self.embeds) or shapes["bank_embeds"] != (bank, self.embeds.shape[-1])
                or shapes["bank_counts"] != (bank,)):
            raise ValueError(f"ZeroShotLabels shapes do not fit together: {shapes} (expected embeds (labels, dim), "
                             "bank_weights (labels, bank), bank_embeds (bank, dim), bank_counts (bank,))")

    def __len__(self) -> int:
        return len(self.embeds)

    @property
    def in_bank(self) -> torch.Tensor:
        """`(labels,)` bool: the labels scored through the report bank."""
        if self.bank_weights is None:
            return torch.zeros(len(self.embeds), dtype=torch.bool)
        return self.bank_weights.sum(-1) > 0


ECG_MODALITY, TEXT_MODALITY = 0, 1


# --------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------


@dataclass
class CGDMEROutput(ModelOutput):
    """Output of [`CGDMERModel`].

    Args:
        loss: sigmoid contrastive loss, when `return_loss=True` and both modalities are given.
        logits_per_ecg: `(ecg_batch, text_batch)` scaled and biased cosine similarities; `sigmoid` gives the
            probability that ECG i matches text j.
        logits_per_text: the transpose of `logits_per_ecg`.
        ecg_embeds / text_embeds: normalised shared (aligned) embeddings, `(batch, projection_dim)`.
        ecg_specific_embeds / text_specific_embeds: normalised modality-specific embeddings (or `None`).
        ecg_model_output / text_model_output: the [`BaseModelOutputWithPooling`] of each tower (as
            `get_ecg_features` / `get_text_features` return it), with its hidden states and attentions when asked.
    """

    loss: Optional[torch.FloatTensor] = None
    logits_per_ecg: Optional[torch.FloatTensor] = None
    logits_per_text: Optional[torch.FloatTensor] = None
    ecg_embeds: Optional[torch.FloatTensor] = None
    text_embeds: Optional[torch.FloatTensor] = None
    ecg_specific_embeds: Optional[torch.FloatTensor] = None
    text_specific_embeds: Optional[torch.FloatTensor] = None
    ecg_model_output: Optional[BaseModelOutputWithPooling] = None
    text_model_output: Optional[BaseModelOutputWithPooling] = None

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in super().to_tuple())


@dataclass
class CGDMERForPreTrainingOutput(ModelOutput):
    """Output of [`CGDMERForPreTraining`]: the weighted total `loss`, every component loss (unweighted), the
    sigmoid loss temperature and bias, the reconstructions and, when asked, the hidden states and attentions of
    the ECG tower (over the visible tokens) and of the report tower (over the clean `input_ids`)."""

    loss: Optional[torch.FloatTensor] = None
    ecg_loss: Optional[torch.FloatTensor] = None
    text_loss: Optional[torch.FloatTensor] = None
    alignment_loss: Optional[torch.FloatTensor] = None
    orthogonality_loss: Optional[torch.FloatTensor] = None
    logit_scale: Optional[torch.FloatTensor] = None
    logit_bias: Optional[torch.FloatTensor] = None
    ecg_reconstruction: Optional[torch.FloatTensor] = None
    ecg_mask: Optional[torch.BoolTensor] = None
    mlm_logits: Optional[torch.FloatTensor] = None
    ecg_embeds: Optional[torch.FloatTensor] = None
    text_embeds: Optional[torch.FloatTensor] = None
    ecg_hidden_states: Optional[tuple[torch.FloatTensor, ...]] = None
    ecg_attentions: Optional[tuple[torch.FloatTensor, ...]] = None
    text_hidden_states: Optional[tuple[torch.FloatTensor, ...]] = None
    text_attentions: Optional[tuple[torch.FloatTensor, ...]] = None


@dataclass
class CGDMERECGClassifierOutput(ModelOutput):
    """Output of [`CGDMERForECGClassification`]: BCE `loss` when labels are given, `logits` per class, the pooled
    features and, when asked, the hidden states and attentions of the ECG tower."""

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    ecg_representation: Optional[torch.FloatTensor] = None
    hidden_states: Optional[tuple[torch.FloatTensor, ...]] = None
    attentions: Optional[tuple[torch.FloatTensor, ...]] = None


# --------------------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------------------


def _gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather `tensor` over processes keeping gradients (integer tensors are gathered as they are); returns
    the gathered tensor and this rank's row offset. Without an initialised process group it returns `tensor`
    and 0."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    if tensor.is_floating_point():
        from torch.distributed.nn.functional import all_gather

        gathered = all_gather(tensor.contiguous())
    else:  # integer tensors (report keys) carry no gradient
        gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0), dist.get_rank() * tensor.shape[0]


def report_keys(input_ids: torch.Tensor, attention_mask: torch.Tensor, length: int) -> torch.Tensor:
    """`(batch, length)` token ids with padding set to -1 and padded to `length`: two rows are equal exactly when
    their reports tokenise the same (the positives of `sigmoid_contrastive_loss(..., text_keys=...)`)."""
    keys = input_ids.masked_fill(~attention_mask.bool(), -1)
    return F.pad(keys, (0, length - keys.shape[1]), value=-1)


def sigmoid_contrastive_loss(
    ecg_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor,
    text_keys: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """SigLIP loss: `-1/B sum_i sum_j log sigmoid(y_ij (exp(t) cos_ij + b))`, `y = +1` on matched pairs.

    Embeddings must be normalised. With `text_keys` (`report_keys` of the batch), an ECG's positives are every
    text identical to its own report, not only its own: PTB-XL repeats a few machine reports hundreds of times
    (about 13 identical pairs in a batch of 32), and the diagonal target would push an ECG away from copies of its
    own report. Under `torch.distributed`, every process compares its ECGs with the texts of all processes
    (all-gather with gradients; equal local batch sizes), so the mean over processes equals the loss of the
    concatenated batch.
    """
    all_text, offset = _gather_with_grad(text_embeds)
    logits = ecg_embeds @ all_text.t() * logit_scale.exp() + logit_bias
    if text_keys is None:
        labels = -torch.ones_like(logits)
        rows = torch.arange(ecg_embeds.shape[0], device=logits.device)
        labels[rows, rows + offset] = 1.0
    else:
        all_keys, _ = _gather_with_grad(text_keys)
        same = (text_keys[:, None, :] == all_keys[None, :, :]).all(-1)
        labels = same.to(logits.dtype) * 2 - 1
    return -F.logsigmoid(labels * logits).sum(dim=-1).mean()


def orthogonality_loss(shared: torch.Tensor, specific: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity between the shared and specific embeddings of the same input."""
    return (F.cosine_similarity(shared, specific, dim=-1) ** 2).mean()


def _masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden` (B, L, D) over positions where `mask` (B, L) is true."""
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


# --------------------------------------------------------------------------------------------------------------
# Transformer blocks (shared by every encoder and the decoder)
# --------------------------------------------------------------------------------------------------------------


ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
# Tower kwargs of internal passes: a model output, no hidden states or attentions (whatever the config says).
_NO_OUTPUTS = {"output_attentions": False, "output_hidden_states": False, "return_dict": True}


def _is_tracing() -> bool:
    """True under `torch.compile` / `torch.export` (and `torch.jit.trace`): data-dependent checks are skipped."""
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.6
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or bool(is_exporting and is_exporting())


def _check_attn_implementation(implementation: Optional[str]) -> str:
    """The attention implementation to run (`None` means the default, SDPA); anything else is refused."""
    implementation = "sdpa" if implementation is None else implementation
    if implementation not in ATTENTION_IMPLEMENTATIONS:
        raise ValueError(f"CG-DMER supports attn_implementation 'eager' and 'sdpa', got {implementation!r} "
                         "(flash and flex attention are not supported: the ECG masks are arbitrary boolean masks)")
    return implementation


def eager_attention_forward(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: Optional[torch.Tensor], scaling: float, dropout: float = 0.0,
                            **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention written out; `attention_mask` is boolean (True = may attend) or additive. Returns the output
    `(batch, length, heads, head_dim)` and the weights `(batch, heads, length, length)`."""
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def _slow_half_precision_sdpa_backward(qkv: torch.Tensor) -> bool:
    """PyTorch's CPU flash-attention kernel runs its backward pass 5-20x slower in bf16/fp16 than in fp32 on the
    short sequences of the ECG tower (e.g. 192 x 4 heads x 40 tokens x 16), so that bf16 autocast training is
    slower than fp32. There, `_cpu_half_precision_attention` is faster; it matches SDPA within bf16 tolerance."""
    return (qkv.device.type == "cpu" and qkv.dtype in (torch.bfloat16, torch.float16) and torch.is_grad_enabled()
            and qkv.requires_grad)


SHORT_SOFTMAX_ROW = 16  # CPU softmax rows up to this long: exp and sum over the whole tensor beat the kernel


def _half_precision_softmax(weights: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension of bf16/fp16 attention logits, accumulated in float32, returned in their
    dtype. PyTorch's CPU softmax kernel walks rows of up to 16 values (the decoder's 12 leads) at several ns a
    value, where `exp` and `sum` over the whole tensor in float32 are 1.6-3.6x faster; longer rows go to the
    kernel, with a float32 output, 1.4-2.7x faster than a bf16 one (`benchmarks/bench_pretrain.py --softmax`)."""
    return (_softmax_exp_sum if weights.shape[-1] <= SHORT_SOFTMAX_ROW else _softmax_kernel)(weights)


def _softmax_exp_sum(weights: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension as `exp` and `sum` over the whole tensor in float32, in the input's dtype."""
    exp = (weights.float() - weights.detach().amax(-1, keepdim=True).float()).exp()
    return (exp / exp.sum(-1, keepdim=True)).to(weights.dtype)


def _softmax_kernel(weights: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension by PyTorch's kernel with a float32 output, in the input's dtype."""
    return F.softmax(weights, dim=-1, dtype=torch.float32).to(weights.dtype)


def _cpu_half_precision_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                  attention_mask: Optional[torch.Tensor], scaling: float, dropout: float = 0.0,
                                  **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention written out for bf16/fp16 training on the CPU (see `_slow_half_precision_sdpa_backward`): the
    query scaled before the product (heads x tokens x dim values, not tokens x tokens), the boolean mask added as
    a bias in place, the softmax by `_half_precision_softmax`. Returns the output `(batch, length, heads,
    head_dim)` and no weights."""
    weights = torch.matmul(query * scaling, key.transpose(-1, -2))
    if attention_mask is not None:
        bias = torch.zeros(attention_mask.shape, dtype=weights.dtype, device=weights.device)
        weights = weights.add_(bias.masked_fill_(~attention_mask, torch.finfo(weights.dtype).min))
    weights = F.dropout(_half_precision_softmax(weights), p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


class CGDMERAttention(nn.Module):
    """Multi-head self-attention, eager or SDPA as `config._attn_implementation` says (SDPA without a config);
    `attn_mask` is a boolean `(B, 1, 1 | L, L)` mask of the keys each query may attend to. Returns the output and
    the attention weights (eager only; `None` with SDPA)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float, config: Optional[CGDMERConfig] = None):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def forward(self, hidden: torch.Tensor, attn_mask: Optional[torch.Tensor],
                groups: Optional[tuple[int, int]] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """`groups=(batch, num_groups)`: `hidden` holds the groups of a divided layer flattened into its batch;
        the weights are returned as `(batch, num_groups, heads, length, length)`."""
        batch, length, width = hidden.shape
        qkv = self.qkv(hidden).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        implementation = _check_attn_implementation(getattr(self.config, "_attn_implementation", None))
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        if implementation == "sdpa" and _slow_half_precision_sdpa_backward(qkv):
            attention_interface = _cpu_half_precision_attention
        out, weights = attention_interface(self, qkv[0], qkv[1], qkv[2], attn_mask, scaling=self.scaling,
                                           dropout=self.dropout if self.training else 0.0, is_causal=False)
        if weights is not None and groups is not None:
            weights = weights.view(*groups, *weights.shape[1:])
        return self.out_proj(out.reshape(batch, length, width)), weights


class CGDMERLayer(GradientCheckpointingLayer):
    """Pre-norm transformer encoder layer (joint attention over all tokens)."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, act: str, eps: float, dropout: float,
                 attention_dropout: float, config: Optional[CGDMERConfig] = None):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(hidden_size, eps=eps)
        self.attention = CGDMERAttention(hidden_size, num_heads, attention_dropout, config)
        self.layer_norm2 = nn.LayerNorm(hidden_size, eps=eps)
        self.fc1 = nn.Linear(hidden_size, intermediate_size)
        self.act = ACT2FN[act]
        self.fc2 = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def mlp(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.dropout(self.fc2(self.act(self.fc1(self.layer_norm2(hidden)))))

    def forward(self, hidden: torch.Tensor, masks: "_AttentionMasks") -> torch.Tensor:
        hidden = hidden + self.dropout(masks.attend(self.attention, self.layer_norm1(hidden), "joint"))
        return self.mlp(hidden)


class CGDMERDividedLayer(CGDMERLayer):
    """Pre-norm layer with divided attention (TimeSformer-style): across time within each lead, then across leads
    at each time slot, then the MLP. `attention` is the temporal attention, `spatial_attention` the spatial one."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, act: str, eps: float, dropout: float,
                 attention_dropout: float, config: Optional[CGDMERConfig] = None):
        super().__init__(hidden_size, num_heads, intermediate_size, act, eps, dropout, attention_dropout, config)
        self.spatial_layer_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.spatial_attention = CGDMERAttention(hidden_size, num_heads, attention_dropout, config)

    def forward(self, hidden: torch.Tensor, masks: "_AttentionMasks") -> torch.Tensor:
        hidden = hidden + self.dropout(masks.attend(self.attention, self.layer_norm1(hidden), "temporal"))
        hidden = hidden + self.dropout(masks.attend(self.spatial_attention, self.spatial_layer_norm(hidden),
                                                    "spatial"))
        return self.mlp(hidden)


@dataclass
class TokenGrid:
    """Where the tokens of a sequence sit on the (leads x patches) grid: `lead_ids` and `time_ids`, `(B, L)`.
    `full=True` says the sequence is the whole grid in lead-major order (attention can run on reshaped groups)."""

    lead_ids: torch.Tensor
    time_ids: torch.Tensor
    num_leads: int
    num_patches: int
    full: bool = False

    @classmethod
    def of(cls, ids: Optional[torch.Tensor], batch: int, num_leads: int, num_patches: int,
           device: torch.device) -> "TokenGrid":
        """The grid of the tokens `ids` (positions in the flattened grid), or of the whole grid when `None`."""
        full = ids is None
        if full:
            ids = torch.arange(num_leads * num_patches, device=device).expand(batch, -1)
        return cls(ids // num_patches, ids % num_patches, num_leads, num_patches, full)


class _AttentionMasks:
    """Key masks of one forward pass, built once and reused by every layer: joint (all valid keys), temporal
    (same lead) and spatial (same time slot). A query whose group holds no valid key attends to its whole group
    (its output is never read by valid tokens), so no row is all-masked."""

    def __init__(self, valid: Optional[torch.Tensor], grid: Optional[TokenGrid]):
        self.valid, self.grid = valid, grid
        self._cache: dict[str, Optional[torch.Tensor]] = {}

    @staticmethod
    def _keys(valid: torch.Tensor) -> torch.Tensor:
        return valid | ~valid.any(dim=-1, keepdim=True)

    def _mask(self, kind: str) -> Optional[torch.Tensor]:
        if kind not in self._cache:
            if self.valid is None:
                self._cache[kind] = None
            elif kind == "joint":
                self._cache[kind] = self._keys(self.valid)[:, None, None, :]
            else:
                ids = self.grid.lead_ids if kind == "temporal" else self.grid.time_ids
                same = ids[:, :, None] == ids[:, None, :]
                keys = same & self.valid[:, None, :]
                self._cache[kind] = (keys | (same & ~keys.any(-1, keepdim=True)))[:, None]
        return self._cache[kind]

    def attend(self, attention: CGDMERAttention, hidden: torch.Tensor, kind: str) -> torch.Tensor:
        """Run `attention` over `hidden` within the groups of `kind` ("joint", "temporal" or "spatial").

        On the full grid the groups run as a batch: the temporal attention weights come out as `(batch, leads,
        heads, patches, patches)`, the spatial ones as `(batch, patches, heads, leads, leads)`; otherwise (a
        subset of the tokens) as `(batch, heads, tokens, tokens)` with the other groups masked."""
        if kind == "joint" or not self.grid.full:
            return attention(hidden, self._mask(kind))[0]
        batch, _, width = hidden.shape
        leads, patches = self.grid.num_leads, self.grid.num_patches
        grid = hidden.view(batch, leads, patches, width)
        valid = None if self.valid is None else self.valid.view(batch, leads, patches)
        if kind == "spatial":
            grid = grid.transpose(1, 2)
            valid = None if valid is None else valid.transpose(1, 2)
        grouped = grid.reshape(-1, grid.shape[2], width)
        mask = None if valid is None else self._keys(valid.reshape(-1, valid.shape[2]))[:, None, None, :]
        out = attention(grouped, mask, groups=(batch, grid.shape[1]))[0].view(grid.shape)
        if kind == "spatial":
            out = out.transpose(1, 2)
        return out.reshape(batch, leads * patches, width)


class CGDMEREncoder(nn.Module):
    """A stack of [`CGDMERLayer`] (or [`CGDMERDividedLayer`] with `divided=True`) and a final LayerNorm; `config`
    (the model's) chooses the attention implementation."""

    def __init__(self, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int, act: str = "gelu",
                 eps: float = 1e-6, dropout: float = 0.0, attention_dropout: float = 0.0, divided: bool = False,
                 config: Optional[CGDMERConfig] = None):
        super().__init__()
        layer = CGDMERDividedLayer if divided else CGDMERLayer
        self.divided = divided
        self.layers = nn.ModuleList(
            layer(hidden_size, num_heads, intermediate_size, act, eps, dropout, attention_dropout, config)
            for _ in range(num_layers)
        )
        self.layer_norm = nn.LayerNorm(hidden_size, eps=eps)

    def forward(self, hidden: torch.Tensor, valid: Optional[torch.Tensor] = None,
                grid: Optional[TokenGrid] = None) -> torch.Tensor:
        """`valid` (B, L) marks the keys that may be attended to; divided attention needs the tokens' `grid`."""
        if self.divided and grid is None:
            raise ValueError("divided attention needs the lead and time position of every token (grid)")
        masks = _AttentionMasks(valid, grid)
        for layer in self.layers:
            hidden = layer(hidden, masks)
        return self.layer_norm(hidden)


def _encoder_from(model_config: CGDMERConfig, config: CGDMEREcgConfig | CGDMERTextConfig, hidden_size: int,
                  num_layers: int, num_heads: int, intermediate_size: int, divided: bool = False) -> CGDMEREncoder:
    """An encoder with the activation, norm and dropout of the tower `config`."""
    return CGDMEREncoder(hidden_size, num_layers, num_heads, intermediate_size, config.hidden_act,
                         config.layer_norm_eps, config.hidden_dropout_prob, config.attention_dropout, divided,
                         model_config)


# --------------------------------------------------------------------------------------------------------------
# Pretrained model base
# --------------------------------------------------------------------------------------------------------------


class CGDMERPreTrainedModel(PreTrainedModel):
    """Base class: weight initialisation, attention implementation, strict loading and input checks."""

    config: CGDMERConfig
    config_class = CGDMERConfig
    base_model_prefix = "cgdmer"
    main_input_name = "ecg_values"
    input_modalities = ("ecg", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["CGDMERLayer", "CGDMERDividedLayer"]
    # Weights a checkpoint of another CG-DMER class may lack, initialised fresh (e.g. a new classifier head).
    _new_head_patterns: tuple[str, ...] = ()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, CGDMEREcgDecoder):
            init.normal_(module.mask_token, std=self.config.initializer_range)
        elif isinstance(module, CGDMERPositionEmbedding) and module.init_std is not None:
            init.normal_(module.weight, std=module.init_std)
        elif isinstance(module, CGDMERModel) and not module.ecg_only:
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
            init.constant_(module.logit_bias, self.config.logit_bias_init_value)

    # ---- attention implementation -----------------------------------------------------------------------------

    def __init__(self, config: CGDMERConfig, *inputs: Any, **kwargs: Any):
        super().__init__(config, *inputs, **kwargs)
        for name in config.sub_configs:
            sub = getattr(config, name)._attn_implementation
            if sub is not None and sub != config._attn_implementation:
                raise ValueError(f"CG-DMER runs one attention implementation in all its encoders; got "
                                 f"{config._attn_implementation!r} for the model and {sub!r} for {name}")

    def _check_and_adjust_attn_implementation(self, attn_implementation: Optional[str], *args: Any,
                                              **kwargs: Any) -> str:
        """Only `"eager"` and `"sdpa"` (the default) exist."""
        _check_attn_implementation(attn_implementation)
        return super()._check_and_adjust_attn_implementation(attn_implementation, *args, **kwargs)

    def set_attn_implementation(self, attn_implementation: str, *args: Any, **kwargs: Any) -> None:
        """`PreTrainedModel.set_attn_implementation` with one implementation (`"eager"` or `"sdpa"`) for all
        towers; a per-sub-config dict is refused."""
        if isinstance(attn_implementation, dict):
            raise ValueError("CG-DMER runs one attention implementation in all its encoders; pass 'eager' or 'sdpa', "
                             f"not {attn_implementation!r}")
        _check_attn_implementation(attn_implementation)
        for name in self.config.sub_configs:  # the towers read the model's config; keep the sub-configs in step
            getattr(self.config, name)._attn_implementation = attn_implementation
        super().set_attn_implementation(attn_implementation, *args, **kwargs)

    def _output_flags(self, output_attentions: Optional[bool], output_hidden_states: Optional[bool]
                      ) -> dict[str, bool]:
        """The tower kwargs asking for attentions / hidden states (`None`: the config's value). Attention weights
        exist with the eager implementation only."""
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        if output_attentions and _check_attn_implementation(self.config._attn_implementation) != "eager":
            raise ValueError(f"output_attentions=True needs the eager attention, but this model runs "
                             f"{self.config._attn_implementation!r}: load it with attn_implementation='eager' or "
                             "call model.set_attn_implementation('eager')")
        output_hidden_states = (self.config.output_hidden_states if output_hidden_states is None
                                else output_hidden_states)
        return {"output_attentions": bool(output_attentions), "output_hidden_states": output_hidden_states,
                "return_dict": True}

    def resize_token_embeddings(self, *args: Any, **kwargs: Any) -> nn.Embedding:
        """`PreTrainedModel.resize_token_embeddings` of the report vocabulary (`config.text_config.vocab_size`;
        with `CGDMERForPreTraining` also the masked-report decoder), e.g. after adding tokens to the tokenizer."""
        if getattr(self.base_model, "ecg_only", False):
            raise ValueError(f"{type(self).__name__} has no report tower, so no token embeddings to resize")
        return super().resize_token_embeddings(*args, **kwargs)

    # ---- loading and saving -----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, *args, strict: bool = True, **kwargs):
        """`PreTrainedModel.from_pretrained`, but a checkpoint with missing, unexpected or mismatched weights
        raises a `ValueError` (never a silently half-random model).

        Expected differences pass: the weights a head adds (its `_new_head_patterns`, e.g. a new classifier)
        and the ones it drops (`_keys_to_ignore_on_load_unexpected`, e.g. the text tower in a classifier);
        `ignore_mismatched_sizes=True` accepts (and freshly initialises) weights of another shape (without it, recent
        transformers raise their own error on a shape mismatch before this check). `strict=False` restores the
        warning-only behaviour of transformers for missing and unexpected weights."""
        from safetensors import SafetensorError

        want_info = kwargs.pop("output_loading_info", False)
        kwargs.setdefault("use_safetensors", True)
        try:
            model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        except SafetensorError as err:
            source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
            raise OSError(f"Could not read the weights file model.safetensors of {source}: {err} (truncated or "
                          "corrupt; delete it and download or save it again)") from err
        if strict:
            mismatched = [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", ())]
            problems = {
                "missing": [k for k in info.get("missing_keys", ())
                            if not any(re.search(p, k) for p in cls._new_head_patterns)
                            and not (kwargs.get("ignore_mismatched_sizes") and k in mismatched)],
                "unexpected": list(info.get("unexpected_keys", ())),
                "mismatched": [] if kwargs.get("ignore_mismatched_sizes") else mismatched,
            }
            problems = {kind: sorted(keys) for kind, keys in problems.items() if keys}
            if problems:
                details = "; ".join(f"{kind} keys: {keys[:8]}{' ...' if len(keys) > 8 else ''}"
                                    for kind, keys in problems.items())
                raise ValueError(
                    f"The checkpoint does not match {cls.__name__} ({details}). Refusing to return a partly "
                    "random model; pass strict=False to load anyway."
                )
        return (model, info) if want_info else model

    def save_pretrained(self, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; a model registered for the Auto classes writes an `auto_map` that
        names every CG-DMER head, so `trust_remote_code=True` loads the folder into any of them."""
        if self._auto_class is not None:
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoConfig": "configuration_cgdmer.CGDMERConfig",
                "AutoModel": "modeling_cgdmer.CGDMERModel",
                "AutoModelForPreTraining": "modeling_cgdmer.CGDMERForPreTraining",
                "AutoModelForSequenceClassification": "modeling_cgdmer.CGDMERForECGClassification",
            }
        return super().save_pretrained(*args, **kwargs)

    # ---- input checks ---------------------------------------------------------------------------------------
    # Shapes and types are checked always; checks that read tensor values (NaN, no lead, token ids) run in eager
    # mode only, so that torch.compile and torch.export trace one graph (the feature extractor and processor
    # produce valid values).

    def _prepare_ecg_inputs(self, ecg_values, lead_mask, ecg_attention_mask
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate ECG inputs and fill defaults; pads shorter signals (masked as padding). The values keep their
        dtype (the ECG embeddings cast them to the model's)."""
        cfg = self.config.ecg_config
        expected = f"(batch, {cfg.num_leads}, {cfg.num_samples})"
        if not isinstance(ecg_values, torch.Tensor) or not ecg_values.is_floating_point():
            raise ValueError(f"ecg_values must be a floating point torch.Tensor of shape {expected}")
        if ecg_values.dim() != 3 or ecg_values.shape[1] != cfg.num_leads:
            raise ValueError(f"ecg_values must have shape {expected}, got {tuple(ecg_values.shape)}")
        batch, _, length = ecg_values.shape
        if length > cfg.num_samples:
            raise ValueError(
                f"ecg_values has {length} samples per lead, longer than the configured {cfg.num_samples} "
                f"({cfg.duration} s at {cfg.sampling_rate} Hz); crop it with the feature extractor"
            )
        eager = not _is_tracing()
        if eager and not torch.isfinite(ecg_values).all():
            raise ValueError("ecg_values contains NaN or infinite values")
        if lead_mask is None:
            lead_mask = torch.ones(batch, cfg.num_leads, dtype=torch.bool, device=ecg_values.device)
        elif tuple(lead_mask.shape) != (batch, cfg.num_leads):
            raise ValueError(f"lead_mask must have shape ({batch}, {cfg.num_leads}), got {tuple(lead_mask.shape)}")
        lead_mask = lead_mask.bool()
        if eager and not lead_mask.any(-1).all():
            raise ValueError("lead_mask marks no lead as present for at least one ECG; at least one lead is needed")
        if ecg_attention_mask is None:
            ecg_attention_mask = torch.ones(batch, length, dtype=torch.bool, device=ecg_values.device)
        elif tuple(ecg_attention_mask.shape) != (batch, length):
            raise ValueError(f"ecg_attention_mask must have shape ({batch}, {length}), "
                             f"got {tuple(ecg_attention_mask.shape)}")
        ecg_attention_mask = ecg_attention_mask.bool()
        if length < cfg.num_samples:
            ecg_values = F.pad(ecg_values, (0, cfg.num_samples - length))
            ecg_attention_mask = F.pad(ecg_attention_mask, (0, cfg.num_samples - length), value=False)
        # Absent leads carry no information, whatever values they hold.
        ecg_values = ecg_values * lead_mask[:, :, None].to(ecg_values.dtype)
        return ecg_values, lead_mask, ecg_attention_mask

    def _prepare_text_inputs(self, input_ids, attention_mask) -> tuple[torch.Tensor, torch.Tensor]:
        max_len = self.config.text_config.max_position_embeddings
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise ValueError("input_ids must be a torch.Tensor of shape (batch, sequence_length)")
        if input_ids.shape[1] > max_len:
            raise ValueError(f"input_ids has {input_ids.shape[1]} tokens, more than max_position_embeddings="
                             f"{max_len}; truncate the reports with the tokenizer")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        elif attention_mask.shape != input_ids.shape:
            raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}")
        if not _is_tracing() and input_ids.numel() and int(input_ids.max()) >= self.config.text_config.vocab_size:
            raise ValueError(f"input_ids holds token id {int(input_ids.max())} >= vocab_size="
                             f"{self.config.text_config.vocab_size}; does the tokenizer match the model?")
        return input_ids, attention_mask.bool()


# --------------------------------------------------------------------------------------------------------------
# ECG tower
# --------------------------------------------------------------------------------------------------------------


class CGDMERPositionEmbedding(nn.Embedding):
    """An `nn.Embedding` of grid positions; `init_std` (when set) overrides the model's `initializer_range`."""

    def __init__(self, num_embeddings: int, embedding_dim: int, init_std: Optional[float] = None):
        super().__init__(num_embeddings, embedding_dim)
        self.init_std = init_std


class CGDMERGridPositions(nn.Module):
    """Learned lead and time embeddings of a (groups x patches) token grid; the lead embedding is looked up by
    lead id (the row of the lead in the standard order), never inferred from the token position. `init_std`
    overrides the model's `initializer_range` for both."""

    def __init__(self, num_groups: int, num_patches: int, hidden_size: int, init_std: Optional[float] = None):
        super().__init__()
        self.lead_embedding = CGDMERPositionEmbedding(num_groups, hidden_size, init_std)
        self.time_embedding = CGDMERPositionEmbedding(num_patches, hidden_size, init_std)

    def forward(self) -> torch.Tensor:
        """(groups * patches, hidden) lead + time embedding of every grid position, lead-major."""
        pos = self.lead_embedding.weight[:, None, :] + self.time_embedding.weight[None, :, :]
        return pos.reshape(-1, pos.shape[-1])


class CGDMEREcgEmbeddings(nn.Module):
    """Cuts each lead into patches; token = LayerNorm(Linear(patch)) + lead embedding + time embedding.

    With `token_mode="lead_patch"` the tokens form a (leads x patches) grid flattened lead-major, so attention
    runs across leads and time. With `"all_leads"` one token holds all leads of a time patch (lead-agnostic).
    """

    def __init__(self, config: CGDMEREcgConfig):
        super().__init__()
        self.config = config
        self.num_groups = config.num_leads if config.token_mode == "lead_patch" else 1
        self.patch_dim = config.patch_size * (1 if config.token_mode == "lead_patch" else config.num_leads)
        self.patch_projection = nn.Linear(self.patch_dim, config.hidden_size)
        self.patch_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.positions = CGDMERGridPositions(self.num_groups, config.num_patches, config.hidden_size,
                                             config.position_init_std)

    def patchify(self, ecg_values: torch.Tensor) -> torch.Tensor:
        """(B, leads, samples) -> (B, groups * patches, patch_dim)."""
        batch, leads, _ = ecg_values.shape
        patches = ecg_values.reshape(batch, leads, self.config.num_patches, self.config.patch_size)
        if self.num_groups == 1:
            patches = patches.permute(0, 2, 1, 3).reshape(batch, 1, self.config.num_patches, self.patch_dim)
        return patches.reshape(batch, -1, self.patch_dim)

    def token_validity(self, lead_mask: torch.Tensor, ecg_attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, groups * patches) bool: the token belongs to a present lead and holds at least one real sample."""
        batch = lead_mask.shape[0]
        patch_valid = ecg_attention_mask.reshape(batch, self.config.num_patches, self.config.patch_size).any(-1)
        lead_valid = lead_mask.bool() if self.num_groups > 1 else lead_mask.bool().any(-1, keepdim=True)
        return (lead_valid[:, :, None] & patch_valid[:, None, :]).reshape(batch, -1)

    def grid(self, ids: Optional[torch.Tensor], batch: int, device: torch.device) -> TokenGrid:
        """Grid positions of the tokens `ids` (all tokens when `None`)."""
        return TokenGrid.of(ids, batch, self.num_groups, self.config.num_patches, device)

    def forward(self, ecg_values: torch.Tensor) -> torch.Tensor:
        """Tokens of `ecg_values` cast to the model's dtype (a bf16 model takes fp32 signals)."""
        patches = self.patchify(ecg_values.to(self.patch_projection.weight.dtype))
        return self.patch_norm(self.patch_projection(patches)) + self.positions()


def _gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """`tokens[b, ids[b]]` for `(B, L, D)` tokens and `(B, K)` ids."""
    return torch.gather(tokens, 1, ids[..., None].expand(-1, -1, tokens.shape[-1]))


class CGDMERTower(CGDMERPreTrainedModel):
    """A modality backbone inside a CG-DMER model (SigLIP's text and vision models): a `PreTrainedModel` so that
    `capture_outputs` records its hidden states (the embeddings, then every layer; the last one after the final
    LayerNorm) and attention weights apart from the other tower's. It holds the model's config and is initialised
    by the model that owns it."""

    _can_record_outputs = {"hidden_states": CGDMERLayer, "attentions": CGDMERAttention}


class CGDMEREcgTransformer(CGDMERTower):
    """ECG-specific backbone: embeddings + transformer over the visible tokens."""

    _input_embed_layer = "patch_projection"

    def __init__(self, config: CGDMERConfig):
        super().__init__(config)
        ecg = config.ecg_config
        self.embeddings = CGDMEREcgEmbeddings(ecg)
        self.encoder = _encoder_from(config, ecg, ecg.hidden_size, ecg.num_hidden_layers, ecg.num_attention_heads,
                                     ecg.intermediate_size, divided=ecg.encoder_attention == "divided")

    @capture_outputs
    def forward(self, ecg_values: torch.Tensor, valid: torch.Tensor, ids_keep: Optional[torch.Tensor] = None,
                **kwargs: Any) -> BaseModelOutput:
        """Token features `(B, L, hidden_size)` of the tokens `ids_keep` (all when `None`); `valid` (B, all
        tokens) marks the keys that may be attended to."""
        tokens = self.embeddings(ecg_values)
        if ids_keep is not None:
            tokens = _gather_tokens(tokens, ids_keep)
            valid = torch.gather(valid, 1, ids_keep)
        grid = self.embeddings.grid(ids_keep, tokens.shape[0], tokens.device)
        return BaseModelOutput(last_hidden_state=self.encoder(tokens, valid, grid))


class CGDMEREcgDecoder(nn.Module):
    """Light MAE decoder: visible features + mask tokens (with their own lead/time embeddings) -> patches.

    With `decoder_slot_pooling`, every token also gets the mean of the visible valid tokens at its time slot
    (over leads); with `decoder_attention="divided"` its layers attend across time within a lead, then across
    leads at a time slot.
    """

    def __init__(self, config: CGDMERConfig):
        super().__init__()
        ecg = config.ecg_config
        self.embed = nn.Linear(config.shared_hidden_size, ecg.decoder_hidden_size)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, ecg.decoder_hidden_size))
        self.num_groups = ecg.num_leads if ecg.token_mode == "lead_patch" else 1
        self.num_patches = ecg.num_patches
        self.slot_pooling = ecg.decoder_slot_pooling
        self.positions = CGDMERGridPositions(self.num_groups, ecg.num_patches, ecg.decoder_hidden_size,
                                             ecg.position_init_std)
        self.encoder = _encoder_from(config, ecg, ecg.decoder_hidden_size, ecg.decoder_num_hidden_layers,
                                     ecg.decoder_num_attention_heads, ecg.decoder_intermediate_size,
                                     divided=ecg.decoder_attention == "divided")
        self.prediction = nn.Linear(ecg.decoder_hidden_size, ecg.patch_size * (ecg.num_leads // self.num_groups))

    def slot_means(self, visible: torch.Tensor, ids_keep: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, patches, D) mean of the visible valid tokens at each time slot (zero where none is visible)."""
        batch, _, width = visible.shape
        weights = torch.gather(valid, 1, ids_keep).to(visible.dtype)[..., None]
        slots = (ids_keep % self.num_patches)[..., None]
        sums = visible.new_zeros(batch, self.num_patches, width).scatter_add(1, slots.expand(-1, -1, width),
                                                                             visible * weights)
        counts = visible.new_zeros(batch, self.num_patches, 1).scatter_add(1, slots, weights)
        return sums / counts.clamp(min=1.0)

    def forward(self, visible: torch.Tensor, ids_keep: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        batch, num_tokens = valid.shape
        visible = self.embed(visible)
        full = self.mask_token.to(visible.dtype).expand(batch, num_tokens, -1).clone()
        full = full.scatter(1, ids_keep[..., None].expand(-1, -1, visible.shape[-1]), visible)
        full = full + self.positions()
        if self.slot_pooling:
            full = full + self.slot_means(visible, ids_keep, valid).repeat(1, self.num_groups, 1)
        grid = TokenGrid.of(None, batch, self.num_groups, self.num_patches, valid.device)
        return self.prediction(self.encoder(full, valid, grid))


# --------------------------------------------------------------------------------------------------------------
# Text tower
# --------------------------------------------------------------------------------------------------------------


class CGDMERTextTransformer(CGDMERTower):
    """BERT-style report encoder: token + position embeddings, LayerNorm, pre-norm transformer."""

    _input_embed_layer = "token_embedding"

    def __init__(self, config: CGDMERConfig):
        super().__init__(config)
        text = config.text_config
        self.token_embedding = nn.Embedding(text.vocab_size, text.hidden_size, padding_idx=text.pad_token_id)
        self.position_embedding = nn.Embedding(text.max_position_embeddings, text.hidden_size)
        self.embedding_norm = nn.LayerNorm(text.hidden_size, eps=text.layer_norm_eps)
        self.encoder = _encoder_from(config, text, text.hidden_size, text.num_hidden_layers,
                                     text.num_attention_heads, text.intermediate_size)

    @capture_outputs
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> BaseModelOutput:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.token_embedding(input_ids) + self.position_embedding(positions)[None]
        return BaseModelOutput(last_hidden_state=self.encoder(self.embedding_norm(hidden), attention_mask.bool()))


class CGDMERMaskedReportHead(nn.Module):
    """Masked report token prediction head (BERT's transform + decoder)."""

    def __init__(self, config: CGDMERConfig):
        super().__init__()
        width = config.shared_hidden_size
        self.dense = nn.Linear(width, width)
        self.act = ACT2FN[config.text_config.hidden_act]
        self.layer_norm = nn.LayerNorm(width, eps=config.text_config.layer_norm_eps)
        self.decoder = nn.Linear(width, config.text_config.vocab_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(self.act(self.dense(hidden))))


# --------------------------------------------------------------------------------------------------------------
# Dual encoder
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Encoded:
    """Token features of one modality after the shared and specific encoders, and its tower's output."""

    shared: torch.Tensor
    specific: Optional[torch.Tensor]
    valid: torch.Tensor
    tower: BaseModelOutput

    def pooled(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        specific = None if self.specific is None else _masked_mean(self.specific, self.valid)
        return _masked_mean(self.shared, self.valid), specific

    def representation(self) -> torch.Tensor:
        """Pooled `[shared; specific]` features."""
        shared, specific = self.pooled()
        return shared if specific is None else torch.cat([shared, specific], dim=-1)

    def fused(self) -> torch.Tensor:
        """Shared + specific token features: what the reconstruction heads read."""
        return self.shared if self.specific is None else self.shared + self.specific

    def features(self, pooler_output: torch.Tensor) -> BaseModelOutputWithPooling:
        """The tower's output with `pooler_output` (the projected shared embedding)."""
        return BaseModelOutputWithPooling(last_hidden_state=self.tower.last_hidden_state, pooler_output=pooler_output,
                                          hidden_states=self.tower.hidden_states, attentions=self.tower.attentions)


class CGDMERModel(CGDMERPreTrainedModel):
    """CG-DMER dual encoder: ECG and report backbones, a modality-shared encoder (one set of weights for both,
    with a modality embedding), a modality-specific encoder per modality, and projections.

    `ecg_only=True` builds the ECG backbone and the shared and specific encoders only, without projections: what
    [`CGDMERForECGClassification`] reads (`get_ecg_representation`).

    Training this model alone (`return_loss=True`, the SigLIP loss) trains the shared branch: the specific
    encoders and projections get no gradient from it (with DDP set `find_unused_parameters=True`).
    [`CGDMERForPreTraining`] trains them through its orthogonality loss.
    """

    _keys_to_ignore_on_load_unexpected = [r"ecg_decoder\.", r"mlm_head\."]

    def __init__(self, config: CGDMERConfig, ecg_only: bool = False):
        super().__init__(config)
        width = config.shared_hidden_size
        self.ecg_only = ecg_only
        self.ecg_model = CGDMEREcgTransformer(config)
        self.ecg_to_shared = nn.Linear(config.ecg_config.hidden_size, width)
        self.modality_embedding = nn.Embedding(2, width)
        self.shared_encoder = self._head_encoder(config.shared_num_hidden_layers)
        if not ecg_only:
            self.shared_projection = nn.Linear(width, config.projection_dim, bias=False)
        if config.disentangle:
            self.ecg_specific_encoder = self._head_encoder(config.specific_num_hidden_layers)
            if not ecg_only:
                self.ecg_specific_projection = nn.Linear(width, config.projection_dim, bias=False)
        if not ecg_only:
            self.text_model = CGDMERTextTransformer(config)
            self.text_to_shared = nn.Linear(config.text_config.hidden_size, width)
            if config.disentangle:
                self.text_specific_encoder = self._head_encoder(config.specific_num_hidden_layers)
                self.text_specific_projection = nn.Linear(width, config.projection_dim, bias=False)
            self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
            self.logit_bias = nn.Parameter(torch.tensor(config.logit_bias_init_value))
        self.post_init()

    def _head_encoder(self, num_layers: int) -> CGDMEREncoder:
        c = self.config
        return _encoder_from(c, c.ecg_config, c.shared_hidden_size, num_layers, c.shared_num_attention_heads,
                             4 * c.shared_hidden_size)

    def _require_text_side(self, what: str) -> None:
        if self.ecg_only:
            raise ValueError(f"This model was built with ecg_only=True (a classifier backbone) and has no {what}; "
                             "use get_ecg_representation, or load the checkpoint as CGDMERModel")

    # ---- embeddings accessors ------------------------------------------------------------------------------

    def get_input_embeddings(self) -> nn.Module:
        """The report token embeddings (`ecg_only`: the ECG patch projection, as vision models return theirs)."""
        return self.ecg_model.embeddings.patch_projection if self.ecg_only else self.text_model.token_embedding

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        """Replace the report token embeddings."""
        self._require_text_side("report token embeddings")
        self.text_model.token_embedding = value

    # ---- encoding ------------------------------------------------------------------------------------------

    def _split(self, hidden: torch.Tensor, valid: torch.Tensor, modality: int, specific: Optional[nn.Module],
               tower: BaseModelOutput) -> _Encoded:
        shared_in = hidden + self.modality_embedding.weight[modality]
        return _Encoded(
            shared=self.shared_encoder(shared_in, valid),
            specific=None if specific is None else specific(hidden, valid),
            valid=valid,
            tower=tower,
        )

    def encode_ecg(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor, ecg_attention_mask: torch.Tensor,
                   ids_keep: Optional[torch.Tensor] = None, with_specific: bool = True, **flags: Any) -> _Encoded:
        """Token features of (already validated) ECG inputs; `ids_keep` selects the visible tokens;
        `with_specific=False` skips the modality-specific encoder (the shared embedding does not read it); `flags`
        (see `_output_flags`) ask the tower for hidden states and attentions."""
        valid = self.ecg_model.embeddings.token_validity(lead_mask, ecg_attention_mask)
        tower = self.ecg_model(ecg_values, valid, ids_keep, **{**_NO_OUTPUTS, **flags})
        if ids_keep is not None:
            valid = torch.gather(valid, 1, ids_keep)
        specific = self.ecg_specific_encoder if self.config.disentangle and with_specific else None
        return self._split(self.ecg_to_shared(tower.last_hidden_state), valid, ECG_MODALITY, specific, tower)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, with_specific: bool = True,
                    **flags: Any) -> _Encoded:
        """Token features of (already validated) report tokens (`with_specific` as in `encode_ecg`)."""
        self._require_text_side("text tower")
        tower = self.text_model(input_ids, attention_mask, **{**_NO_OUTPUTS, **flags})
        specific = self.text_specific_encoder if self.config.disentangle and with_specific else None
        return self._split(self.text_to_shared(tower.last_hidden_state), attention_mask, TEXT_MODALITY, specific,
                           tower)

    def project(self, encoded: _Encoded, modality: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Shared and specific embeddings `(B, projection_dim)` of encoded tokens, before normalisation."""
        self._require_text_side("projections")
        shared, specific = encoded.pooled()
        if specific is not None:
            head = self.ecg_specific_projection if modality == ECG_MODALITY else self.text_specific_projection
            specific = head(specific)
        return self.shared_projection(shared), specific

    def embed(self, encoded: _Encoded, modality: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Normalised shared and specific embeddings `(B, projection_dim)` of encoded tokens."""
        return self._features_and_embeds(encoded, modality)[1:]

    # ---- features ------------------------------------------------------------------------------------------

    @can_return_tuple
    def get_ecg_features(self, ecg_values: torch.Tensor, lead_mask: Optional[torch.Tensor] = None,
                         ecg_attention_mask: Optional[torch.Tensor] = None, output_attentions: Optional[bool] = None,
                         output_hidden_states: Optional[bool] = None, return_dict: Optional[bool] = None
                         ) -> BaseModelOutputWithPooling:
        """The ECG tower's output; `pooler_output` is the shared (text-aligned) ECG embedding `(batch,
        projection_dim)`, before normalisation. `last_hidden_state`, `hidden_states` and `attentions` are the ECG
        backbone's."""
        self._require_text_side("projections (get_ecg_features)")
        inputs = self._prepare_ecg_inputs(ecg_values, lead_mask, ecg_attention_mask)
        encoded = self.encode_ecg(*inputs, with_specific=False,
                                  **self._output_flags(output_attentions, output_hidden_states))
        return encoded.features(self.shared_projection(encoded.pooled()[0]))

    @can_return_tuple
    def get_text_features(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                          output_attentions: Optional[bool] = None, output_hidden_states: Optional[bool] = None,
                          return_dict: Optional[bool] = None) -> BaseModelOutputWithPooling:
        """The report tower's output; `pooler_output` is the shared (ECG-aligned) report embedding `(batch,
        projection_dim)`, before normalisation."""
        inputs = self._prepare_text_inputs(input_ids, attention_mask)
        encoded = self.encode_text(*inputs, with_specific=False,
                                   **self._output_flags(output_attentions, output_hidden_states))
        return encoded.features(self.shared_projection(encoded.pooled()[0]))

    def get_ecg_representation(self, ecg_values: torch.Tensor, lead_mask: Optional[torch.Tensor] = None,
                               ecg_attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pooled `[shared; specific]` ECG features `(batch, representation_size)` for probes and fine-tuning."""
        return self.encode_ecg(*self._prepare_ecg_inputs(ecg_values, lead_mask, ecg_attention_mask)).representation()

    def _features_and_embeds(self, encoded: _Encoded, modality: int
                             ) -> tuple[BaseModelOutputWithPooling, torch.Tensor, Optional[torch.Tensor]]:
        """The tower output with its projected embedding, and the normalised shared and specific embeddings."""
        shared, specific = self.project(encoded, modality)
        normalized = None if specific is None else F.normalize(specific, dim=-1)
        return encoded.features(shared), F.normalize(shared, dim=-1), normalized

    @property
    def representation_size(self) -> int:
        return self.config.shared_hidden_size * (2 if self.config.disentangle else 1)

    def alignment_keys(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Optional[torch.Tensor]:
        """The `text_keys` of the SigLIP loss: `report_keys` of the batch when `config.alignment_positives` is
        `"identical_reports"`, `None` (the diagonal target) when it is `"diagonal"`."""
        if self.config.alignment_positives == "diagonal":
            return None
        return report_keys(input_ids, attention_mask, self.config.text_config.max_position_embeddings)

    def similarity_logits(self, ecg_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """`exp(logit_scale) * cos + logit_bias` between normalised embeddings, `(n_ecg, n_text)`."""
        return ecg_embeds @ text_embeds.t() * self.logit_scale.exp() + self.logit_bias

    @can_return_tuple
    def forward(
        self,
        ecg_values: Optional[torch.FloatTensor] = None,
        lead_mask: Optional[torch.Tensor] = None,
        ecg_attention_mask: Optional[torch.Tensor] = None,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        return_loss: Optional[bool] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> CGDMEROutput:
        """Embed ECGs and/or reports; with both, return the pairwise logits and (optionally) the SigLIP loss.
        `output_attentions` / `output_hidden_states` fill `ecg_model_output` and `text_model_output`."""
        self._require_text_side("projections (use CGDMERForECGClassification)")
        flags = self._output_flags(output_attentions, output_hidden_states)
        ecg_embeds = ecg_specific = text_embeds = text_specific = ecg_output = text_output = None
        logits_per_ecg = loss = None
        if ecg_values is not None:
            enc = self.encode_ecg(*self._prepare_ecg_inputs(ecg_values, lead_mask, ecg_attention_mask), **flags)
            ecg_output, ecg_embeds, ecg_specific = self._features_and_embeds(enc, ECG_MODALITY)
        if input_ids is not None:
            input_ids, attention_mask = self._prepare_text_inputs(input_ids, attention_mask)
            enc = self.encode_text(input_ids, attention_mask, **flags)
            text_output, text_embeds, text_specific = self._features_and_embeds(enc, TEXT_MODALITY)
        if ecg_embeds is not None and text_embeds is not None:
            logits_per_ecg = self.similarity_logits(ecg_embeds, text_embeds)
            if return_loss:
                loss = sigmoid_contrastive_loss(ecg_embeds, text_embeds, self.logit_scale, self.logit_bias,
                                                self.alignment_keys(input_ids, attention_mask))
        return CGDMEROutput(
            loss=loss,
            logits_per_ecg=logits_per_ecg,
            logits_per_text=None if logits_per_ecg is None else logits_per_ecg.t(),
            ecg_embeds=ecg_embeds,
            text_embeds=text_embeds,
            ecg_specific_embeds=ecg_specific,
            text_specific_embeds=text_specific,
            ecg_model_output=ecg_output,
            text_model_output=text_output,
        )

    # ---- zero-shot classification ----------------------------------------------------------------------------
    # The zero-shot pipeline, `training.ZeroShotEvaluation` and the evaluation harness all score with these:
    # label embeddings of prompt ensembles, L2-normalised ECG embeddings, independent sigmoid scores (calibrated
    # when `config.zero_shot_calibration` holds a fit); retrieval ranks reports and ECGs by cosine similarity.

    @staticmethod
    def _projected(features: BaseModelOutputWithPooling) -> torch.Tensor:
        """The projected embedding tensor of a `get_ecg_features` / `get_text_features` result."""
        return features.pooler_output

    def zero_shot_ecg_embeddings(self, ecg_values: torch.Tensor, lead_mask: Optional[torch.Tensor] = None,
                                 ecg_attention_mask: Optional[torch.Tensor] = None, normalize: bool = True
                                 ) -> torch.Tensor:
        """Shared ECG embeddings `(batch, projection_dim)` in float32, L2-normalised (what `zero_shot_scores`
        compares) unless `normalize=False`."""
        embeds = self._projected(self.get_ecg_features(ecg_values, lead_mask, ecg_attention_mask)).float()
        return F.normalize(embeds, dim=-1) if normalize else embeds

    @torch.no_grad()
    def zero_shot_label_embeddings(self, prompts: dict[str, list[str]] | tuple[tuple[str, tuple[str, ...]], ...],
                                   tokenizer, use_report_bank: bool = True) -> torch.Tensor:
        """`(labels, projection_dim)` normalised float32 label embeddings: each description is embedded and
        normalised, a label's descriptions (its prompt ensemble) are averaged and the mean normalised again.

        With a report bank (`config.zero_shot_reports`, set with the centre) and `use_report_bank`, a description
        that shares a word with a bank report is embedded instead as the normalised mean of the bank reports'
        embeddings, weighted by `report_bank_weights` (count times the share of the description's words, by idf,
        the report holds, squared): a class name the reports seldom use verbatim ("myocardial infarction") is
        scored by the reports that name it ("inferior myocardial infarction"). A description with no word in the
        bank keeps its own embedding.

        `prompts`: `{label: description or [descriptions]}` or `((label, (description, ...)), ...)` (what the
        pipeline's `build_prompts` validates), tokenized with the report `tokenizer`. A description longer than
        the report encoder reads is refused (it would be cut silently)."""
        return self.zero_shot_labels(prompts, tokenizer, use_report_bank=use_report_bank).embeds

    @staticmethod
    def _zero_shot_items(prompts: dict[str, list[str]] | tuple[tuple[str, tuple[str, ...]], ...]
                         ) -> list[tuple[str, tuple[str, ...]]]:
        """`[(label, (description, ...)), ...]` of a `{label: description(s)}` mapping or of such pairs."""
        items = list(prompts.items()) if hasattr(prompts, "items") else list(prompts)
        return [(label, (descriptions,) if isinstance(descriptions, str) else tuple(descriptions))
                for label, descriptions in items]

    @torch.no_grad()
    def zero_shot_labels(self, prompts: dict[str, list[str]] | tuple[tuple[str, tuple[str, ...]], ...],
                         tokenizer, use_report_bank: bool = True) -> ZeroShotLabels:
        """The labels of `prompts` as `zero_shot_logits` scores them: their embeddings (as
        `zero_shot_label_embeddings` describes) and, with a report bank (`config.zero_shot_reports`) and
        `use_report_bank`, each label's weights of the bank reports (`report_bank_weights`, averaged over its
        descriptions that share a word with the bank; a row of zeros when none does). `prompts` as for
        `zero_shot_label_embeddings`."""
        if self.ecg_only:
            raise ValueError("This model has no report encoder (ecg_only); zero-shot classification needs the text "
                             "tower of a CGDMERModel or CGDMERForPreTraining checkpoint")
        items = self._zero_shot_items(prompts)
        texts = [(label, text) for label, descriptions in items for text in descriptions]
        tokens = tokenizer([text for _, text in texts], padding=True, return_tensors="pt")
        max_length = self.config.text_config.max_position_embeddings
        long = [f"{label!r}: {text!r} ({n} tokens)"
                for (label, text), n in zip(texts, tokens["attention_mask"].sum(-1).tolist(), strict=True)
                if n > max_length]
        if long:
            raise ValueError(f"Label text longer than the report encoder's {max_length} tokens (it would be "
                             f"truncated): {'; '.join(long)}; shorten it")
        embeds = F.normalize(self._projected(self.get_text_features(tokens["input_ids"].to(self.device),
                                                                    tokens["attention_mask"].to(self.device))
                                             ).float(), dim=-1)
        sizes = [len(descriptions) for _, descriptions in items]
        bank = self.config.zero_shot_reports if use_report_bank else None
        if not bank:
            return ZeroShotLabels(F.normalize(torch.stack([c.mean(0) for c in embeds.split(sizes)]), dim=-1))
        weights = report_bank_weights(bank, [text for _, text in texts])
        matched = weights.sum(-1) > 0
        bank_embeds = self._zero_shot_bank_embeddings(tokenizer)
        if matched.any():
            embeds[matched.to(embeds.device)] = F.normalize(weights[matched] @ bank_embeds, dim=-1).to(embeds)
        labels = F.normalize(torch.stack([chunk.mean(0) for chunk in embeds.split(sizes)]), dim=-1)
        per_label = [chunk[held].mean(0) if held.any() else torch.zeros_like(chunk[0])
                     for chunk, held in zip(weights.split(sizes), matched.split(sizes), strict=True)]
        return ZeroShotLabels(labels, torch.stack(per_label), bank_embeds, _bank_index(tuple(bank.items()))[0])

    def zero_shot_logits(self, ecg_embeds: torch.Tensor, label_embeds: torch.Tensor | ZeroShotLabels,
                         centred: bool = True) -> torch.Tensor:
        """The zero-shot logits, `(n_ecg, n_labels)` float32: what the zero-shot scores are the sigmoid of (and what
        a calibration rescales).

        A label with bank weights (`ZeroShotLabels` from `zero_shot_labels`) is scored through the report bank:
        its logit is `log(p / (1 - p))` for `p = sum_r P(r | ecg) * w_r / count_r`, the expected share of the
        label's words in the reports the ECG is likely to have, where `P(r | ecg)` is proportional to
        `count_r * exp(exp(logit_scale) * ecg . r)` over the bank's reports `r` (SigLIP's own temperature) and
        `w_r` is the label's weight of `r` (`report_bank_weights`; `w_r / count_r` is the share of the label's
        words that `r` holds). As the temperature goes to 0 this ranks ECGs as `ecg . (m_w - m_count)` does,
        `m_w` being the `w`-weighted and `m_count` the count-weighted mean of the bank's report embeddings.

        Any other label (a tensor of normalised label embeddings, a label without a word in the bank, or
        `centred=False`): `similarity_logits(ecg, label)`, less `exp(logit_scale) * (ecg . centre -
        zero_shot_centre_offset)` when the config holds a `zero_shot_centre` and `centred` (each ECG's likeness
        to the average pretraining report, relative to that of the average pretraining ECG, taken out of all
        its labels alike); `centred=False` gives the plain SigLIP logits of the embeddings."""
        labels = label_embeds if isinstance(label_embeds, ZeroShotLabels) else ZeroShotLabels(label_embeds)
        ecg = ecg_embeds.float()
        cosine = ecg @ labels.embeds.to(ecg.device).float().t()
        if centred and self.config.zero_shot_centre is not None:
            centre = torch.tensor(self.config.zero_shot_centre, dtype=torch.float32, device=ecg.device)
            cosine = cosine - (ecg @ centre - float(self.config.zero_shot_centre_offset))[:, None]
        logits = self.logit_scale.float().exp() * cosine + self.logit_bias.float()
        in_bank = labels.in_bank.to(ecg.device)
        if centred and in_bank.any():
            logits[:, in_bank] = self._zero_shot_bank_logits(ecg, labels.bank_weights[in_bank.cpu()], labels
                                                             ).to(logits)
        return logits

    def _zero_shot_bank_logits(self, ecg: torch.Tensor, weights: torch.Tensor, labels: ZeroShotLabels
                               ) -> torch.Tensor:
        """`log(p / (1 - p))` of the bank posterior `p` (see `zero_shot_logits`), float64 on the CPU (differentiable
        with respect to the ECG embeddings)."""
        similarity = self.logit_scale.double().exp().cpu() * (ecg.double().cpu() @ labels.bank_embeds.double().t())
        evidence = torch.exp(similarity - similarity.amax(-1, keepdim=True))  # P(r | ecg) up to count and a norm
        p = (evidence @ weights.t()) / (evidence @ labels.bank_counts)[:, None]
        p = p.clamp(1e-15, 1 - 1e-15)
        return torch.log(p) - torch.log1p(-p)

    @staticmethod
    def zero_shot_label_key(descriptions: str | Sequence[str]) -> str:
        """The key of a label in a zero-shot calibration (`config.zero_shot_calibration["per_label"]`): its
        description(s), each NFC-normalised, lower-cased, with single spaces and no final full stop, joined with
        `" | "`. A label is known by what it says, not by a class code."""
        texts = (descriptions,) if isinstance(descriptions, str) else tuple(descriptions)
        return " | ".join(" ".join(unicodedata.normalize("NFC", t).lower().split()).rstrip(" .") for t in texts)

    def zero_shot_calibrated(self, calibrated: bool = True) -> bool:
        """Whether `zero_shot_scores(..., calibrated=calibrated)` applies a calibration (the config has one)."""
        return bool(calibrated) and self.config.zero_shot_calibration is not None

    def zero_shot_constant_labels(self, label_texts: Sequence[str | Sequence[str]]) -> list[int]:
        """Indices of the labels (by their description(s)) whose calibration pair has scale 0 (or, from an older
        fit, below): calibrated, they score the same for every ECG (or reversed), the model having ranked them
        backwards on the validation split of the fit."""
        calibration = self.config.zero_shot_calibration
        if calibration is None:
            return []
        return [j for j, (scale, _) in enumerate(self._calibration_pairs(calibration, label_texts)) if scale <= 0.0]

    @classmethod
    def _calibration_pairs(cls, calibration: dict, label_texts: Sequence[str | Sequence[str]]) -> list[list[float]]:
        """`[scale, bias]` of each label: its own pair in `calibration["per_label"]` (keyed by
        `zero_shot_label_key`), else the shared one."""
        shared = [float(calibration["scale"]), float(calibration["bias"])]
        per_label = calibration.get("per_label") or {}
        return [[float(v) for v in per_label.get(cls.zero_shot_label_key(t), shared)] for t in label_texts]

    @classmethod
    def apply_zero_shot_calibration(cls, logits: torch.Tensor, calibration: dict,
                                    label_texts: Optional[Sequence[str | Sequence[str]]] = None) -> torch.Tensor:
        """`sigmoid(scale * logit + bias)` of `(n, labels)` logits: per label the `(scale, bias)` that
        `calibration["per_label"]` holds for its key (`zero_shot_label_key` of `label_texts[j]`), else the shared
        `calibration["scale"]`, `calibration["bias"]` (every label when `label_texts` is None)."""
        if label_texts is None:
            params = [[float(calibration["scale"]), float(calibration["bias"])]] * logits.shape[-1]
        else:
            if len(label_texts) != logits.shape[-1]:
                raise ValueError(f"label_texts has {len(label_texts)} entries for {logits.shape[-1]} labels")
            params = cls._calibration_pairs(calibration, label_texts)
        params = torch.tensor(params, dtype=torch.float32, device=logits.device)
        return torch.sigmoid(logits.float() * params[:, 0] + params[:, 1])

    def zero_shot_scores(self, ecg_embeds: torch.Tensor, label_embeds: torch.Tensor | ZeroShotLabels,
                         label_texts: Optional[Sequence[str | Sequence[str]]] = None, calibrated: bool = True
                         ) -> torch.Tensor:
        """Independent label probabilities, `(n_ecg, n_labels)` float32, of normalised ECG embeddings
        (`zero_shot_ecg_embeddings`) and labels (`zero_shot_labels`, or normalised label embeddings):
        `sigmoid(zero_shot_logits(ecg, label))` (for a label scored through the report bank, the bank posterior
        itself: the expected share of its words in the ECG's likely reports), or,
        when the config holds a `zero_shot_calibration` and `calibrated`, its calibrated probabilities
        (`apply_zero_shot_calibration`; `label_texts`, the description(s) of each label, select per-label
        calibrations). A calibration is fitted on these logits, centred when the config holds a centre."""
        logits = self.zero_shot_logits(ecg_embeds, label_embeds)
        if not self.zero_shot_calibrated(calibrated):
            return torch.sigmoid(logits)
        return self.apply_zero_shot_calibration(logits, self.config.zero_shot_calibration, label_texts)

    @torch.no_grad()
    def zero_shot_report_embeddings(self, reports: Sequence[str], tokenizer, batch_size: int = 64) -> torch.Tensor:
        """`(len(reports), projection_dim)` normalised float32 embeddings of report texts (cleaned as the
        pretraining reports were), truncated to the report encoder's length as in pretraining: the candidates and
        queries of retrieval."""
        if self.ecg_only:
            raise ValueError("This model has no report encoder (ecg_only); retrieval needs the text tower")
        if isinstance(reports, str) or any(not isinstance(r, str) for r in reports):
            raise TypeError("reports must be a list of strings")
        chunks = []
        for start in range(0, len(reports), batch_size):
            tokens = tokenizer(list(reports[start:start + batch_size]), padding=True, truncation=True,
                               max_length=self.config.text_config.max_position_embeddings, return_tensors="pt")
            chunks.append(F.normalize(self._projected(self.get_text_features(
                tokens["input_ids"].to(self.device), tokens["attention_mask"].to(self.device))).float(), dim=-1))
        return torch.cat(chunks) if chunks else torch.zeros(0, self.config.projection_dim)

    def _zero_shot_bank_embeddings(self, tokenizer) -> torch.Tensor:
        """Float64 embeddings of the report bank's texts (in its order), kept until a weight, the bank or the
        tokenizer changes (parameters are compared by storage and in-place version)."""
        texts = tuple(self.config.zero_shot_reports)
        key = (texts, id(tokenizer), tuple((p.data_ptr(), p._version) for p in self.parameters()))
        cached = getattr(self, "_bank_cache", None)
        if cached is None or cached[0] != key:
            self._bank_cache = (key, self.zero_shot_report_embeddings(list(texts), tokenizer).double().cpu())
        return self._bank_cache[1]

    def fit_zero_shot_centre(self, reports: Sequence[str], tokenizer, ecg_inputs: Iterable[dict[str, torch.Tensor]],
                             batch_size: int = 64) -> list[float]:
        """Fit the zero-shot centre on pretraining data and return it: `config.zero_shot_centre`, the mean
        normalised shared embedding of `reports` (texts cleaned as the pretraining reports were, each counted as
        often as it occurs), and `config.zero_shot_centre_offset`, the mean similarity to it of the ECGs of
        `ecg_inputs` (batches of `ecg_values`, `lead_mask`, `ecg_attention_mask`), which keeps the average logit
        where SigLIP trained it; and `config.zero_shot_reports`, the report bank of zero-shot label embeddings
        (the `ZERO_SHOT_BANK_SIZE` most frequent distinct `reports` with their counts). Never fit it on test data. A
        calibration fitted on other logits is removed (with a warning): fit it again afterwards."""
        counts = collections.Counter(r for r in reports if r)
        if not counts:
            raise ValueError("fit_zero_shot_centre needs at least one report with text")
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                texts = list(counts)
                embeds = self.zero_shot_report_embeddings(texts, tokenizer, batch_size).cpu().double()
                weights = torch.tensor([counts[t] for t in texts], dtype=torch.float64)
                centre = (weights @ embeds) / weights.sum()
                ecg = [self.zero_shot_ecg_embeddings(**{k: v.to(self.device) for k, v in batch.items()}).cpu()
                       for batch in ecg_inputs]
        finally:
            self.train(was_training)
        if not sum(len(e) for e in ecg):
            raise ValueError("fit_zero_shot_centre needs at least one ECG")
        if self.config.zero_shot_calibration is not None:
            logger.warning("The zero-shot calibration was fitted on other logits and is removed; fit it again")
            self.config.zero_shot_calibration = None
        self.config.zero_shot_centre = [float(v) for v in centre]
        self.config.zero_shot_centre_offset = float((torch.cat(ecg).double() @ centre).mean())
        self.config.zero_shot_reports = dict(counts.most_common(ZERO_SHOT_BANK_SIZE))
        return self.config.zero_shot_centre

    @staticmethod
    def retrieve(query_embeds: torch.Tensor, candidate_embeds: torch.Tensor, top_k: int = 10
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """The `top_k` candidates most similar to each query by cosine similarity (ECG -> report or report ->
        ECG): `(scores, indices)`, each `(n_queries, min(top_k, n_candidates))`, best first."""
        if query_embeds.ndim != 2 or candidate_embeds.ndim != 2 or query_embeds.shape[1] != candidate_embeds.shape[1]:
            raise ValueError(f"query {tuple(query_embeds.shape)} and candidate {tuple(candidate_embeds.shape)} "
                             "embeddings must be (n, dim) with the same dim")
        if top_k < 1 or len(candidate_embeds) == 0:
            raise ValueError(f"retrieve needs top_k >= 1 and candidates, got top_k={top_k}, "
                             f"{len(candidate_embeds)} candidates")
        similarity = F.normalize(query_embeds.float(), dim=-1) @ F.normalize(
            candidate_embeds.float().to(query_embeds.device), dim=-1).t()
        return similarity.topk(min(int(top_k), similarity.shape[1]), dim=-1)


# --------------------------------------------------------------------------------------------------------------
# Pretraining
# --------------------------------------------------------------------------------------------------------------


class CGDMERForPreTraining(CGDMERPreTrainedModel):
    """CG-DMER pretraining: spatial-temporal masked ECG reconstruction + masked report modeling + SigLIP
    alignment of the shared embeddings + orthogonality of shared and specific embeddings.

    The ECG mask is drawn inside `forward`: in training fresh from the torch RNG at every step; in eval mode from a
    seed derived from each ECG's own values, so that a sample's mask depends on that sample alone (not on its batch
    or its place in it) and validation losses are comparable. `noise` (as ViTMAE's) or an explicit `ecg_mask`
    replace the draw; under `torch.compile` / `torch.export` an eval-mode model needs one of them. The encoder sees
    the visible tokens only (MAE-style); the shared ECG embedding used for alignment is pooled over the same
    visible tokens.

    With reports every parameter gets a gradient (the specific projections through the orthogonality loss). An
    ECG-only batch trains the ECG side only: the text tower, projections and `logit_scale` / `logit_bias` get no
    gradient (with DDP, `find_unused_parameters=True`), as with a loss weight of 0.

    The masked-report decoder (`get_output_embeddings`) is tied to the report token embeddings when
    `config.tie_word_embeddings` (off by default; needs `shared_hidden_size == text_config.hidden_size`).
    """

    accepts_loss_kwargs = False
    _tied_weights_keys = {"mlm_head.decoder.weight": "cgdmer.text_model.token_embedding.weight"}

    def __init__(self, config: CGDMERConfig):
        super().__init__(config)
        self.cgdmer = CGDMERModel(config)
        self.ecg_decoder = CGDMEREcgDecoder(config)
        self.mlm_head = CGDMERMaskedReportHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        """The masked-report decoder (shared features -> report vocabulary)."""
        return self.mlm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.mlm_head.decoder = value

    # ---- masking -------------------------------------------------------------------------------------------

    def _noise_sizes(self) -> tuple[int, ...]:
        """Draws per ECG: those of the masking strategy, in the order it draws them (counted by calling it on an
        empty batch), then one per token."""
        cfg = self.config.ecg_config
        groups = self.cgdmer.ecg_model.embeddings.num_groups
        widths: list[int] = []

        def count(rows: int, size: int) -> torch.Tensor:
            widths.append(size)
            return torch.zeros(rows, size)

        MASKING_STRATEGIES[cfg.masking_strategy](cfg, 0, groups, cfg.num_patches, count, torch.device("cpu"))
        return (*widths, groups * cfg.num_patches)

    @property
    def ecg_noise_size(self) -> int:
        """Width of `noise`: one draw per lead and per time-span slot (`"spatial_temporal"`), then one per token."""
        return sum(self._noise_sizes())

    @property
    def num_masked_tokens(self) -> int:
        """Tokens masked in every ECG: `round(mask_ratio * tokens)`."""
        cfg = self.config.ecg_config
        return round(cfg.mask_ratio * self.cgdmer.ecg_model.embeddings.num_groups * cfg.num_patches)

    def sample_noise(self, batch_size: int, generator: Optional[torch.Generator] = None,
                     device: Optional[torch.device] = None, sizes: Optional[tuple[int, ...]] = None) -> torch.Tensor:
        """`(batch_size, ecg_noise_size)` uniform noise in [0, 1), drawn as `generate_ecg_mask` draws it (`sizes`:
        `_noise_sizes()`, when the caller has it already)."""
        def rand(size: int) -> torch.Tensor:
            return torch.rand(batch_size, size, generator=generator,
                              device=generator.device if generator else device).to(device)

        return torch.cat([rand(size) for size in (sizes or self._noise_sizes()) if size], dim=-1)

    def _noise_of_each_ecg(self, ecg_values: torch.Tensor) -> torch.Tensor:
        """Eval-mode noise: each row drawn from a seed that hashes that ECG's values (nothing else)."""
        rows, sizes = [], self._noise_sizes()
        for ecg in ecg_values.detach().to("cpu", torch.float32):
            seed = int.from_bytes(hashlib.blake2b(ecg.numpy().tobytes(), digest_size=8).digest(), "little") >> 1
            rows.append(self.sample_noise(1, torch.Generator().manual_seed(seed), sizes=sizes))
        return torch.cat(rows).to(ecg_values.device) if rows else self.sample_noise(0, device=ecg_values.device)

    def _check_noise(self, noise: torch.Tensor, batch: int) -> torch.Tensor:
        if not isinstance(noise, torch.Tensor) or not noise.is_floating_point() or \
                tuple(noise.shape) != (batch, self.ecg_noise_size):
            got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ValueError(f"noise must be a float tensor of shape ({batch}, {self.ecg_noise_size}) (batch, "
                             f"ecg_noise_size), got {got}")
        return noise.float()

    def generate_ecg_mask(self, valid: torch.Tensor, generator: Optional[torch.Generator] = None,
                          noise: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The pretraining mask, `(B, groups * patches)` bool, True = masked, made from `noise` (`(B,
        ecg_noise_size)`, see `sample_noise`; drawn with `generator` when `None`). Row i depends on `valid[i]` and
        `noise[i]` only.

        The configured strategy (`configuration_cgdmer.MASKING_STRATEGIES`) chooses the tokens masked first from
        its share of the noise (e.g. `"spatial_temporal"`: the leads and time spans with the lowest draws; `"random"`:
        none), then the tokens with the highest draws fill the mask until exactly `round(mask_ratio * tokens)` are
        masked (ViTMAE's `noise`). Invalid tokens (absent leads, padding) are masked before random valid
        ones, so the encoder sees as much real signal as possible.
        """
        cfg = self.config.ecg_config
        groups, patches = self.cgdmer.ecg_model.embeddings.num_groups, cfg.num_patches
        batch, device = valid.shape[0], valid.device
        sizes = self._noise_sizes()
        noise = self.sample_noise(batch, generator, device, sizes) if noise is None else self._check_noise(noise, batch)
        *parts, token_noise = noise.to(device).split(sizes, dim=-1)
        draws = iter(parts)

        def strategy_noise(rows: int, size: int) -> torch.Tensor:
            """The strategy's next `size` draws per ECG, in the order `_noise_sizes` counted them."""
            return next(draws)

        forced = MASKING_STRATEGIES[cfg.masking_strategy](cfg, batch, groups, patches, strategy_noise, device)
        score = token_noise + (~valid).float() + 2.0 * forced.reshape(batch, -1).float()
        order = score.argsort(dim=-1, descending=True)
        return torch.zeros_like(valid).scatter(1, order[:, : self.num_masked_tokens], True)

    @staticmethod
    def _check_ecg_mask(ecg_mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if not isinstance(ecg_mask, torch.Tensor) or tuple(ecg_mask.shape) != tuple(valid.shape):
            shape = tuple(ecg_mask.shape) if isinstance(ecg_mask, torch.Tensor) else type(ecg_mask).__name__
            raise ValueError(f"ecg_mask must be a bool tensor of shape {tuple(valid.shape)} (batch, leads * "
                             f"patches, lead-major), got {shape}")
        mask = ecg_mask.bool().to(valid.device)
        if not _is_tracing():
            counts = mask.sum(-1)
            if (counts != counts[0]).any():
                raise ValueError(f"ecg_mask must mask the same number of tokens in every row, got {counts.tolist()}")
            if bool((~mask).sum(-1).eq(0).any()):
                raise ValueError("ecg_mask masks every token; leave at least one visible")
        return mask

    def _ecg_mask(self, ecg_values: torch.Tensor, valid: torch.Tensor, ecg_mask: Optional[torch.Tensor],
                  noise: Optional[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """The mask of this forward pass and its number of visible tokens per ECG."""
        if ecg_mask is not None:
            if noise is not None:
                raise ValueError("Pass ecg_mask or noise, not both")
            mask = self._check_ecg_mask(ecg_mask, valid)
            if not _is_tracing():
                return mask, int((~mask[0]).sum())
            # A traced graph has a static visible length: the configured one (checked when the graph runs).
            num_visible = valid.shape[1] - self.num_masked_tokens
            torch._assert_async((~mask).sum(-1).eq(num_visible).all(),
                                f"under torch.compile / torch.export, ecg_mask must mask num_masked_tokens="
                                f"{self.num_masked_tokens} tokens (mask_ratio) in every row")
            return mask, num_visible
        if noise is None and not self.training:
            if _is_tracing():
                raise ValueError("An eval-mode CGDMERForPreTraining draws each ECG's mask from a hash of its values, "
                                 "which torch.compile / torch.export cannot trace; pass noise= or ecg_mask=")
            noise = self._noise_of_each_ecg(ecg_values)
        mask = self.generate_ecg_mask(valid) if noise is None else self.generate_ecg_mask(valid, noise=noise)
        return mask, valid.shape[1] - self.num_masked_tokens

    def _reconstruction_target(self, ecg_values: torch.Tensor) -> torch.Tensor:
        target = self.cgdmer.ecg_model.embeddings.patchify(ecg_values)
        if self.config.ecg_config.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True, unbiased=False)
            target = (target - mean) / (var + 1e-6).sqrt()
        return target

    # ---- forward -------------------------------------------------------------------------------------------

    @staticmethod
    def _component(weight: float, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Compute a loss component; with weight 0 it is computed without gradient (reported, not trained)."""
        if weight == 0:
            with torch.no_grad():
                return compute().detach()
        return compute()

    @can_return_tuple
    def forward(
        self,
        ecg_values: torch.FloatTensor,
        lead_mask: Optional[torch.Tensor] = None,
        ecg_attention_mask: Optional[torch.Tensor] = None,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        mlm_input_ids: Optional[torch.LongTensor] = None,
        mlm_labels: Optional[torch.LongTensor] = None,
        ecg_mask: Optional[torch.BoolTensor] = None,
        return_loss: bool = True,
        noise: Optional[torch.FloatTensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> CGDMERForPreTrainingOutput:
        """Masked ECG modeling on `ecg_values`; with `input_ids` (clean report tokens) also the SigLIP and
        orthogonality losses; with `mlm_input_ids` + `mlm_labels` (masked copy, -100 = not masked) the masked
        report loss. Without reports the model trains as an ECG-only masked autoencoder.

        `ecg_mask` (`(batch, leads * patches)` bool, lead-major, True = masked, the same count in every row)
        replaces the drawn mask, e.g. to ask the model for chosen leads or time spans; `noise` (`(batch,
        ecg_noise_size)`, see `generate_ecg_mask`) fixes the draw."""
        cfg, model = self.config, self.cgdmer
        flags = self._output_flags(output_attentions, output_hidden_states)
        ecg_values, lead_mask, ecg_attention_mask = self._prepare_ecg_inputs(ecg_values, lead_mask,
                                                                             ecg_attention_mask)
        valid = model.ecg_model.embeddings.token_validity(lead_mask, ecg_attention_mask)
        mask, num_visible = self._ecg_mask(ecg_values, valid, ecg_mask, noise)
        # Visible tokens first, in grid order (a stable sort keeps a fixed shape, no nonzero()).
        ids_keep = mask.to(torch.int8).argsort(dim=-1, stable=True)[:, :num_visible]
        ecg = model.encode_ecg(ecg_values, lead_mask, ecg_attention_mask, ids_keep, **flags)
        text = None
        out: dict[str, Optional[torch.Tensor]] = {}

        def ecg_loss() -> torch.Tensor:
            out["ecg_reconstruction"] = self.ecg_decoder(ecg.fused(), ids_keep, valid)
            per_token = ((out["ecg_reconstruction"] - self._reconstruction_target(ecg_values)) ** 2).mean(-1)
            counted = (mask & valid).to(per_token.dtype)
            return (per_token * counted).sum() / counted.sum().clamp(min=1.0)

        losses = {"ecg_loss": (cfg.ecg_loss_weight, self._component(cfg.ecg_loss_weight, ecg_loss))}
        ecg_embeds, ecg_specific = model.embed(ecg, ECG_MODALITY)
        text_embeds = None

        if input_ids is not None:
            input_ids, attention_mask = self._prepare_text_inputs(input_ids, attention_mask)
            text = model.encode_text(input_ids, attention_mask, **flags)
            text_embeds, text_specific = model.embed(text, TEXT_MODALITY)
            keys = model.alignment_keys(input_ids, attention_mask)
            losses["alignment_loss"] = (cfg.alignment_loss_weight, self._component(
                cfg.alignment_loss_weight,
                lambda: sigmoid_contrastive_loss(ecg_embeds, text_embeds, model.logit_scale, model.logit_bias,
                                                 keys)))
            if cfg.disentangle:
                losses["orthogonality_loss"] = (cfg.orthogonality_loss_weight, self._component(
                    cfg.orthogonality_loss_weight,
                    lambda: (orthogonality_loss(ecg_embeds, ecg_specific)
                             + orthogonality_loss(text_embeds, text_specific)) / 2))

        if mlm_input_ids is not None and mlm_labels is not None:
            if mlm_labels.shape != mlm_input_ids.shape:
                raise ValueError("mlm_labels must have the shape of mlm_input_ids")
            mlm_mask = attention_mask if attention_mask is not None and attention_mask.shape == mlm_input_ids.shape \
                else mlm_input_ids.ne(cfg.text_config.pad_token_id)

            def text_loss() -> torch.Tensor:
                masked = model.encode_text(*self._prepare_text_inputs(mlm_input_ids, mlm_mask))
                logits = out["mlm_logits"] = self.mlm_head(masked.fused())
                # A sum over the masked tokens / their count (0 without any): no data-dependent branch.
                summed = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), mlm_labels.reshape(-1),
                                         ignore_index=-100, reduction="sum")
                return summed / mlm_labels.ne(-100).sum().clamp(min=1)

            losses["text_loss"] = (cfg.text_loss_weight, self._component(cfg.text_loss_weight, text_loss))

        total = None
        if return_loss:
            weighted = [weight * value for weight, value in losses.values() if weight != 0]
            total = sum(weighted) if weighted else torch.zeros((), device=ecg_values.device, requires_grad=True)
        return CGDMERForPreTrainingOutput(
            loss=total,
            **{name: value for name, (_, value) in losses.items()},
            logit_scale=model.logit_scale.detach(),
            logit_bias=model.logit_bias.detach(),
            ecg_reconstruction=out.get("ecg_reconstruction"),
            ecg_mask=mask,
            mlm_logits=out.get("mlm_logits"),
            ecg_embeds=ecg_embeds,
            text_embeds=text_embeds,
            ecg_hidden_states=ecg.tower.hidden_states,
            ecg_attentions=ecg.tower.attentions,
            text_hidden_states=None if text is None else text.tower.hidden_states,
            text_attentions=None if text is None else text.tower.attentions,
        )


# --------------------------------------------------------------------------------------------------------------
# Downstream classification
# --------------------------------------------------------------------------------------------------------------


class CGDMERForECGClassification(CGDMERPreTrainedModel):
    """Multi-label (default) or single-label ECG classifier: a linear head on the pooled `[shared; specific]`
    ECG features. `config.freeze_backbone=True` (or `freeze_backbone()`) trains the head only: a linear probe.

    It holds only what it uses (every parameter gets a gradient; DDP needs no `find_unused_parameters`). It loads
    from a pretraining or dual-encoder checkpoint: the text tower, the projections, `logit_scale` / `logit_bias`
    and the pretraining heads in it are expected to be unused (`_keys_to_ignore_on_load_unexpected`), and the
    classifier head starts fresh (`_new_head_patterns`); any other difference is an error.
    """

    _keys_to_ignore_on_load_unexpected = [r"text_model\.", r"text_to_shared\.", r"text_specific_",
                                          r"shared_projection\.", r"ecg_specific_projection\.",
                                          r"logit_scale", r"logit_bias", r"ecg_decoder\.", r"mlm_head\."]
    _new_head_patterns = (r"^classifier\.",)

    def __init__(self, config: CGDMERConfig):
        super().__init__(config)
        self.cgdmer = CGDMERModel(config, ecg_only=True)
        self.classifier = nn.Linear(self.cgdmer.representation_size, config.num_labels)
        self.post_init()
        if config.freeze_backbone:
            self.freeze_backbone()

    def freeze_backbone(self) -> None:
        """Freeze everything but the classifier (linear probing)."""
        self.config.freeze_backbone = True
        for param in self.cgdmer.parameters():
            param.requires_grad_(False)

    @can_return_tuple
    def forward(
        self,
        ecg_values: torch.FloatTensor,
        lead_mask: Optional[torch.Tensor] = None,
        ecg_attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[bool] = None,
        return_dict: Optional[bool] = None,
    ) -> CGDMERECGClassifierOutput:
        inputs = self._prepare_ecg_inputs(ecg_values, lead_mask, ecg_attention_mask)
        encoded = self.cgdmer.encode_ecg(*inputs, **self._output_flags(output_attentions, output_hidden_states))
        features = encoded.representation()
        logits = self.classifier(features)
        loss = None
        if labels is not None:
            if self.config.problem_type == "single_label_classification":
                loss = F.cross_entropy(logits, labels.long())
            else:
                if labels.shape != logits.shape:
                    raise ValueError(f"labels must have shape {tuple(logits.shape)} (multi-hot), "
                                     f"got {tuple(labels.shape)}")
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return CGDMERECGClassifierOutput(loss=loss, logits=logits, ecg_representation=features,
                                         hidden_states=encoded.tower.hidden_states,
                                         attentions=encoded.tower.attentions)


__all__ = [
    "CGDMERPreTrainedModel",
    "CGDMERModel",
    "CGDMERForPreTraining",
    "CGDMERForECGClassification",
    "ZERO_SHOT_CENTRE_ECGS",
    "ZERO_SHOT_BANK_SIZE",
    "report_bank_weights",
    "description_words",
    "ZeroShotLabels",
    "report_keys",
    "sigmoid_contrastive_loss",
    "orthogonality_loss",
]
