"""PyTorch CG-DMER: spatial-temporal masked ECG modeling, masked report modeling and disentangled
modality-shared / modality-specific representations aligned with a sigmoid (SigLIP) loss."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_cgdmer import MASKING_STRATEGIES, CGDMERConfig, CGDMEREcgConfig, CGDMERTextConfig

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
    """

    loss: Optional[torch.FloatTensor] = None
    logits_per_ecg: Optional[torch.FloatTensor] = None
    logits_per_text: Optional[torch.FloatTensor] = None
    ecg_embeds: Optional[torch.FloatTensor] = None
    text_embeds: Optional[torch.FloatTensor] = None
    ecg_specific_embeds: Optional[torch.FloatTensor] = None
    text_specific_embeds: Optional[torch.FloatTensor] = None


@dataclass
class CGDMERForPreTrainingOutput(ModelOutput):
    """Output of [`CGDMERForPreTraining`]: the weighted total `loss`, every component loss (unweighted), the
    sigmoid loss temperature and bias, and the reconstructions."""

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


@dataclass
class CGDMERECGClassifierOutput(ModelOutput):
    """Output of [`CGDMERForECGClassification`]: BCE `loss` when labels are given, `logits` per class."""

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    ecg_representation: Optional[torch.FloatTensor] = None


# --------------------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------------------


def _gather_with_grad(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather `tensor` over processes keeping gradients; returns the gathered tensor and this rank's row
    offset. Without an initialised process group it returns `tensor` and 0."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    from torch.distributed.nn.functional import all_gather

    gathered = all_gather(tensor.contiguous())
    return torch.cat(gathered, dim=0), dist.get_rank() * tensor.shape[0]


def sigmoid_contrastive_loss(
    ecg_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
) -> torch.Tensor:
    """SigLIP loss: `-1/B sum_i sum_j log sigmoid(y_ij (exp(t) cos_ij + b))`, `y = +1` on matched pairs.

    Embeddings must be normalised. Under `torch.distributed`, every process compares its ECGs with the texts
    of all processes (all-gather with gradients; equal local batch sizes), so the mean over processes equals
    the loss of the concatenated batch.
    """
    all_text, offset = _gather_with_grad(text_embeds)
    logits = ecg_embeds @ all_text.t() * logit_scale.exp() + logit_bias
    labels = -torch.ones_like(logits)
    rows = torch.arange(ecg_embeds.shape[0], device=logits.device)
    labels[rows, rows + offset] = 1.0
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


class CGDMERAttention(nn.Module):
    """Multi-head self-attention with PyTorch SDPA; `attn_mask` is a boolean `(B, 1, 1 | L, L)` mask of the keys
    each query may attend to."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def forward(self, hidden: torch.Tensor, attn_mask: Optional[torch.Tensor]) -> torch.Tensor:
        batch, length, width = hidden.shape
        qkv = self.qkv(hidden).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            qkv[0], qkv[1], qkv[2], attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class CGDMERLayer(GradientCheckpointingLayer):
    """Pre-norm transformer encoder layer (joint attention over all tokens)."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, act: str, eps: float, dropout: float,
                 attention_dropout: float):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(hidden_size, eps=eps)
        self.attention = CGDMERAttention(hidden_size, num_heads, attention_dropout)
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
                 attention_dropout: float):
        super().__init__(hidden_size, num_heads, intermediate_size, act, eps, dropout, attention_dropout)
        self.spatial_layer_norm = nn.LayerNorm(hidden_size, eps=eps)
        self.spatial_attention = CGDMERAttention(hidden_size, num_heads, attention_dropout)

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
        """Run `attention` over `hidden` within the groups of `kind` ("joint", "temporal" or "spatial")."""
        if kind == "joint" or not self.grid.full:
            return attention(hidden, self._mask(kind))
        batch, _, width = hidden.shape
        leads, patches = self.grid.num_leads, self.grid.num_patches
        grid = hidden.view(batch, leads, patches, width)
        valid = None if self.valid is None else self.valid.view(batch, leads, patches)
        if kind == "spatial":
            grid = grid.transpose(1, 2)
            valid = None if valid is None else valid.transpose(1, 2)
        groups = grid.reshape(-1, grid.shape[2], width)
        mask = None if valid is None else self._keys(valid.reshape(-1, valid.shape[2]))[:, None, None, :]
        out = attention(groups, mask).view(grid.shape)
        if kind == "spatial":
            out = out.transpose(1, 2)
        return out.reshape(batch, leads * patches, width)


class CGDMEREncoder(nn.Module):
    """A stack of [`CGDMERLayer`] (or [`CGDMERDividedLayer`] with `divided=True`) and a final LayerNorm."""

    def __init__(self, hidden_size: int, num_layers: int, num_heads: int, intermediate_size: int, act: str = "gelu",
                 eps: float = 1e-6, dropout: float = 0.0, attention_dropout: float = 0.0, divided: bool = False):
        super().__init__()
        layer = CGDMERDividedLayer if divided else CGDMERLayer
        self.divided = divided
        self.layers = nn.ModuleList(
            layer(hidden_size, num_heads, intermediate_size, act, eps, dropout, attention_dropout)
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


def _encoder_from(config: CGDMEREcgConfig | CGDMERTextConfig, hidden_size: int, num_layers: int, num_heads: int,
                  intermediate_size: int, divided: bool = False) -> CGDMEREncoder:
    return CGDMEREncoder(hidden_size, num_layers, num_heads, intermediate_size, config.hidden_act,
                         config.layer_norm_eps, config.hidden_dropout_prob, config.attention_dropout, divided)


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
        tokens = self.patch_norm(self.patch_projection(self.patchify(ecg_values)))
        return tokens + self.positions()


def _gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """`tokens[b, ids[b]]` for `(B, L, D)` tokens and `(B, K)` ids."""
    return torch.gather(tokens, 1, ids[..., None].expand(-1, -1, tokens.shape[-1]))


class CGDMEREcgTransformer(nn.Module):
    """ECG-specific backbone: embeddings + transformer over the visible tokens."""

    def __init__(self, config: CGDMEREcgConfig):
        super().__init__()
        self.embeddings = CGDMEREcgEmbeddings(config)
        self.encoder = _encoder_from(config, config.hidden_size, config.num_hidden_layers,
                                     config.num_attention_heads, config.intermediate_size,
                                     divided=config.encoder_attention == "divided")

    def forward(self, ecg_values: torch.Tensor, valid: torch.Tensor, ids_keep: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.embeddings(ecg_values)
        if ids_keep is not None:
            tokens = _gather_tokens(tokens, ids_keep)
            valid = torch.gather(valid, 1, ids_keep)
        grid = self.embeddings.grid(ids_keep, tokens.shape[0], tokens.device)
        return self.encoder(tokens, valid, grid), valid


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
        self.encoder = _encoder_from(ecg, ecg.decoder_hidden_size, ecg.decoder_num_hidden_layers,
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


class CGDMERTextTransformer(nn.Module):
    """BERT-style report encoder: token + position embeddings, LayerNorm, pre-norm transformer."""

    def __init__(self, config: CGDMERTextConfig):
        super().__init__()
        self.token_embedding = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embedding = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.embedding_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = _encoder_from(config, config.hidden_size, config.num_hidden_layers,
                                     config.num_attention_heads, config.intermediate_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.token_embedding(input_ids) + self.position_embedding(positions)[None]
        return self.encoder(self.embedding_norm(hidden), attention_mask.bool())


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
# Pretrained model base
# --------------------------------------------------------------------------------------------------------------


class CGDMERPreTrainedModel(PreTrainedModel):
    """Base class: weight initialisation, strict loading and input checks."""

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

    @classmethod
    def from_pretrained(cls, *args, strict: bool = True, **kwargs):
        """`PreTrainedModel.from_pretrained`, but a checkpoint with missing, unexpected or mismatched weights
        raises a `ValueError` (never a silently half-random model). `strict=False` restores the warning-only
        behaviour of transformers."""
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
            problems = {
                "missing": [k for k in info.get("missing_keys", ())
                            if not any(re.search(p, k) for p in cls._new_head_patterns)],
                "unexpected": list(info.get("unexpected_keys", ())),
                "mismatched": [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", ())],
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

    def _prepare_ecg_inputs(self, ecg_values, lead_mask, ecg_attention_mask
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate ECG inputs and fill defaults; pads shorter signals (masked as padding)."""
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
        if not torch.isfinite(ecg_values).all():
            raise ValueError("ecg_values contains NaN or infinite values")
        if lead_mask is None:
            lead_mask = torch.ones(batch, cfg.num_leads, dtype=torch.bool, device=ecg_values.device)
        elif tuple(lead_mask.shape) != (batch, cfg.num_leads):
            raise ValueError(f"lead_mask must have shape ({batch}, {cfg.num_leads}), got {tuple(lead_mask.shape)}")
        lead_mask = lead_mask.bool()
        if not lead_mask.any(-1).all():
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
        if input_ids.numel() and int(input_ids.max()) >= self.config.text_config.vocab_size:
            raise ValueError(f"input_ids holds token id {int(input_ids.max())} >= vocab_size="
                             f"{self.config.text_config.vocab_size}; does the tokenizer match the model?")
        return input_ids, attention_mask.bool()


# --------------------------------------------------------------------------------------------------------------
# Dual encoder
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Encoded:
    """Token features of one modality after the shared and specific encoders."""

    shared: torch.Tensor
    specific: Optional[torch.Tensor]
    valid: torch.Tensor

    def pooled(self) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        specific = None if self.specific is None else _masked_mean(self.specific, self.valid)
        return _masked_mean(self.shared, self.valid), specific

    def fused(self) -> torch.Tensor:
        """Shared + specific token features: what the reconstruction heads read."""
        return self.shared if self.specific is None else self.shared + self.specific


class CGDMERModel(CGDMERPreTrainedModel):
    """CG-DMER dual encoder: ECG and report backbones, a modality-shared encoder (one set of weights for both,
    with a modality embedding), a modality-specific encoder per modality, and projections.

    `ecg_only=True` builds the ECG side only (used by [`CGDMERForECGClassification`]).
    """

    _keys_to_ignore_on_load_unexpected = [r"ecg_decoder\.", r"mlm_head\."]

    def __init__(self, config: CGDMERConfig, ecg_only: bool = False):
        super().__init__(config)
        width = config.shared_hidden_size
        self.ecg_only = ecg_only
        self.ecg_model = CGDMEREcgTransformer(config.ecg_config)
        self.ecg_to_shared = nn.Linear(config.ecg_config.hidden_size, width)
        self.modality_embedding = nn.Embedding(2, width)
        self.shared_encoder = self._head_encoder(config.shared_num_hidden_layers)
        self.shared_projection = nn.Linear(width, config.projection_dim, bias=False)
        if config.disentangle:
            self.ecg_specific_encoder = self._head_encoder(config.specific_num_hidden_layers)
            self.ecg_specific_projection = nn.Linear(width, config.projection_dim, bias=False)
        if not ecg_only:
            self.text_model = CGDMERTextTransformer(config.text_config)
            self.text_to_shared = nn.Linear(config.text_config.hidden_size, width)
            if config.disentangle:
                self.text_specific_encoder = self._head_encoder(config.specific_num_hidden_layers)
                self.text_specific_projection = nn.Linear(width, config.projection_dim, bias=False)
            self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init_value))
            self.logit_bias = nn.Parameter(torch.tensor(config.logit_bias_init_value))
        self.post_init()

    def _head_encoder(self, num_layers: int) -> CGDMEREncoder:
        c = self.config
        return _encoder_from(c.ecg_config, c.shared_hidden_size, num_layers, c.shared_num_attention_heads,
                             4 * c.shared_hidden_size)

    def _split(self, hidden: torch.Tensor, valid: torch.Tensor, modality: int, specific: Optional[nn.Module]
               ) -> _Encoded:
        shared_in = hidden + self.modality_embedding.weight[modality]
        return _Encoded(
            shared=self.shared_encoder(shared_in, valid),
            specific=None if specific is None else specific(hidden, valid),
            valid=valid,
        )

    def encode_ecg(self, ecg_values: torch.Tensor, lead_mask: torch.Tensor, ecg_attention_mask: torch.Tensor,
                   ids_keep: Optional[torch.Tensor] = None) -> _Encoded:
        """Token features of (already validated) ECG inputs; `ids_keep` selects the visible tokens."""
        valid = self.ecg_model.embeddings.token_validity(lead_mask, ecg_attention_mask)
        hidden, valid = self.ecg_model(ecg_values, valid, ids_keep)
        specific = self.ecg_specific_encoder if self.config.disentangle else None
        return self._split(self.ecg_to_shared(hidden), valid, ECG_MODALITY, specific)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> _Encoded:
        """Token features of (already validated) report tokens."""
        if self.ecg_only:
            raise ValueError("This model was built with ecg_only=True and has no text tower")
        hidden = self.text_to_shared(self.text_model(input_ids, attention_mask))
        specific = self.text_specific_encoder if self.config.disentangle else None
        return self._split(hidden, attention_mask, TEXT_MODALITY, specific)

    def embed(self, encoded: _Encoded, modality: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Normalised shared and specific embeddings `(B, projection_dim)` of encoded tokens."""
        shared, specific = encoded.pooled()
        shared = F.normalize(self.shared_projection(shared), dim=-1)
        if specific is not None:
            head = self.ecg_specific_projection if modality == ECG_MODALITY else self.text_specific_projection
            specific = F.normalize(head(specific), dim=-1)
        return shared, specific

    def get_ecg_features(self, ecg_values: torch.Tensor, lead_mask: Optional[torch.Tensor] = None,
                         ecg_attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Shared (text-aligned) ECG embeddings `(batch, projection_dim)`, before normalisation."""
        inputs = self._prepare_ecg_inputs(ecg_values, lead_mask, ecg_attention_mask)
        shared, _ = self.encode_ecg(*inputs).pooled()
        return self.shared_projection(shared)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None
                          ) -> torch.Tensor:
        """Shared (ECG-aligned) report embeddings `(batch, projection_dim)`, before normalisation."""
        shared, _ = self.encode_text(*self._prepare_text_inputs(input_ids, attention_mask)).pooled()
        return self.shared_projection(shared)

    def get_ecg_representation(self, ecg_values: torch.Tensor, lead_mask: Optional[torch.Tensor] = None,
                               ecg_attention_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pooled `[shared; specific]` ECG features `(batch, representation_size)` for probes and fine-tuning."""
        shared, specific = self.encode_ecg(*self._prepare_ecg_inputs(ecg_values, lead_mask, ecg_attention_mask)
                                           ).pooled()
        return shared if specific is None else torch.cat([shared, specific], dim=-1)

    @property
    def representation_size(self) -> int:
        return self.config.shared_hidden_size * (2 if self.config.disentangle else 1)

    def similarity_logits(self, ecg_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """`exp(logit_scale) * cos + logit_bias` between normalised embeddings, `(n_ecg, n_text)`."""
        return ecg_embeds @ text_embeds.t() * self.logit_scale.exp() + self.logit_bias

    def forward(
        self,
        ecg_values: Optional[torch.FloatTensor] = None,
        lead_mask: Optional[torch.Tensor] = None,
        ecg_attention_mask: Optional[torch.Tensor] = None,
        input_ids: Optional[torch.LongTensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        return_loss: Optional[bool] = None,
    ) -> CGDMEROutput:
        """Embed ECGs and/or reports; with both, return the pairwise logits and (optionally) the SigLIP loss."""
        ecg_embeds = ecg_specific = text_embeds = text_specific = None
        logits_per_ecg = loss = None
        if ecg_values is not None:
            enc = self.encode_ecg(*self._prepare_ecg_inputs(ecg_values, lead_mask, ecg_attention_mask))
            ecg_embeds, ecg_specific = self.embed(enc, ECG_MODALITY)
        if input_ids is not None:
            enc = self.encode_text(*self._prepare_text_inputs(input_ids, attention_mask))
            text_embeds, text_specific = self.embed(enc, TEXT_MODALITY)
        if ecg_embeds is not None and text_embeds is not None:
            logits_per_ecg = self.similarity_logits(ecg_embeds, text_embeds)
            if return_loss:
                loss = sigmoid_contrastive_loss(ecg_embeds, text_embeds, self.logit_scale, self.logit_bias)
        return CGDMEROutput(
            loss=loss,
            logits_per_ecg=logits_per_ecg,
            logits_per_text=None if logits_per_ecg is None else logits_per_ecg.t(),
            ecg_embeds=ecg_embeds,
            text_embeds=text_embeds,
            ecg_specific_embeds=ecg_specific,
            text_specific_embeds=text_specific,
        )

    # ---- zero-shot classification ----------------------------------------------------------------------------
    # The zero-shot pipeline, `training.ZeroShotEvaluation` and the evaluation harness all score with these:
    # label embeddings of prompt ensembles, L2-normalised ECG embeddings, independent sigmoid scores (calibrated
    # when `config.zero_shot_calibration` holds a fit); retrieval ranks reports and ECGs by cosine similarity.

    @staticmethod
    def _projected(features: torch.Tensor) -> torch.Tensor:
        """The projected embedding tensor of a `get_ecg_features` / `get_text_features` result."""
        return features

    def zero_shot_ecg_embeddings(self, ecg_values: torch.Tensor, lead_mask: Optional[torch.Tensor] = None,
                                 ecg_attention_mask: Optional[torch.Tensor] = None, normalize: bool = True
                                 ) -> torch.Tensor:
        """Shared ECG embeddings `(batch, projection_dim)` in float32, L2-normalised (what `zero_shot_scores`
        compares) unless `normalize=False`."""
        embeds = self._projected(self.get_ecg_features(ecg_values, lead_mask, ecg_attention_mask)).float()
        return F.normalize(embeds, dim=-1) if normalize else embeds

    @torch.no_grad()
    def zero_shot_label_embeddings(self, prompts: dict[str, list[str]] | tuple[tuple[str, tuple[str, ...]], ...],
                                   tokenizer) -> torch.Tensor:
        """`(labels, projection_dim)` normalised float32 label embeddings: each description is embedded and
        normalised, a label's descriptions (its prompt ensemble) are averaged and the mean normalised again.

        `prompts`: `{label: description or [descriptions]}` or `((label, (description, ...)), ...)` (what the
        pipeline's `build_prompts` validates), tokenized with the report `tokenizer`. A description longer than
        the report encoder reads is refused (it would be cut silently)."""
        if self.ecg_only:
            raise ValueError("This model has no report encoder (ecg_only); zero-shot classification needs the text "
                             "tower of a CGDMERModel or CGDMERForPreTraining checkpoint")
        items = list(prompts.items()) if hasattr(prompts, "items") else list(prompts)
        items = [(label, (descriptions,) if isinstance(descriptions, str) else tuple(descriptions))
                 for label, descriptions in items]
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
        labels = torch.stack([chunk.mean(0) for chunk in embeds.split([len(d) for _, d in items])])
        return F.normalize(labels, dim=-1)

    def zero_shot_logits(self, ecg_embeds: torch.Tensor, label_embeds: torch.Tensor) -> torch.Tensor:
        """`similarity_logits(ecg, label)` in float32, `(n_ecg, n_labels)`: what the zero-shot scores are the
        sigmoid of (and what a calibration rescales)."""
        return self.similarity_logits(ecg_embeds, label_embeds.to(ecg_embeds.device)).float()

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

    @classmethod
    def apply_zero_shot_calibration(cls, logits: torch.Tensor, calibration: dict,
                                    label_texts: Optional[Sequence[str | Sequence[str]]] = None) -> torch.Tensor:
        """`sigmoid(scale * logit + bias)` of `(n, labels)` logits: per label the `(scale, bias)` that
        `calibration["per_label"]` holds for its key (`zero_shot_label_key` of `label_texts[j]`), else the shared
        `calibration["scale"]`, `calibration["bias"]` (every label when `label_texts` is None)."""
        shared = [float(calibration["scale"]), float(calibration["bias"])]
        if label_texts is None:
            params = [shared] * logits.shape[-1]
        else:
            if len(label_texts) != logits.shape[-1]:
                raise ValueError(f"label_texts has {len(label_texts)} entries for {logits.shape[-1]} labels")
            per_label = calibration.get("per_label") or {}
            params = [per_label.get(cls.zero_shot_label_key(t), shared) for t in label_texts]
        params = torch.tensor(params, dtype=torch.float32, device=logits.device)
        return torch.sigmoid(logits.float() * params[:, 0] + params[:, 1])

    def zero_shot_scores(self, ecg_embeds: torch.Tensor, label_embeds: torch.Tensor,
                         label_texts: Optional[Sequence[str | Sequence[str]]] = None, calibrated: bool = True
                         ) -> torch.Tensor:
        """Independent label probabilities, `(n_ecg, n_labels)` float32, of normalised ECG and label embeddings
        (`zero_shot_ecg_embeddings`, `zero_shot_label_embeddings`): `sigmoid(zero_shot_logits(ecg, label))`, or,
        when the config holds a `zero_shot_calibration` and `calibrated`, its calibrated probabilities
        (`apply_zero_shot_calibration`; `label_texts`, the description(s) of each label, select per-label
        calibrations)."""
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

    The ECG mask is drawn inside `forward` (fresh every training step; a fixed seed in eval mode so validation
    losses are comparable). The encoder sees the visible tokens only (MAE-style); the shared ECG embedding used
    for alignment is pooled over the same visible tokens.
    """

    accepts_loss_kwargs = False

    def __init__(self, config: CGDMERConfig):
        super().__init__(config)
        self.cgdmer = CGDMERModel(config)
        self.ecg_decoder = CGDMEREcgDecoder(config)
        self.mlm_head = CGDMERMaskedReportHead(config)
        self.post_init()

    # ---- masking -------------------------------------------------------------------------------------------

    def generate_ecg_mask(self, valid: torch.Tensor, generator: Optional[torch.Generator] = None
                          ) -> torch.Tensor:
        """Draw the pretraining mask, `(B, groups * patches)` bool, True = masked.

        The configured strategy (`configuration_cgdmer.MASKING_STRATEGIES`) chooses the tokens masked first (e.g.
        `"spatial_temporal"`: whole leads and time spans; `"random"`: none), then random tokens until exactly
        `round(mask_ratio * tokens)` are masked. Invalid tokens (absent leads, padding) are masked before random
        valid ones, so the encoder sees as much real signal as possible.
        """
        cfg = self.config.ecg_config
        groups, patches = self.cgdmer.ecg_model.embeddings.num_groups, cfg.num_patches
        batch, device = valid.shape[0], valid.device

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, device=generator.device if generator else device
                              ).to(device)

        forced = MASKING_STRATEGIES[cfg.masking_strategy](cfg, batch, groups, patches, rand, device)
        score = rand(batch, groups * patches) + (~valid).float() + 2.0 * forced.reshape(batch, -1).float()
        num_masked = round(cfg.mask_ratio * groups * patches)
        order = score.argsort(dim=-1, descending=True)
        return torch.zeros_like(valid).scatter(1, order[:, :num_masked], True)

    @staticmethod
    def _check_ecg_mask(ecg_mask: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if not isinstance(ecg_mask, torch.Tensor) or tuple(ecg_mask.shape) != tuple(valid.shape):
            shape = tuple(ecg_mask.shape) if isinstance(ecg_mask, torch.Tensor) else type(ecg_mask).__name__
            raise ValueError(f"ecg_mask must be a bool tensor of shape {tuple(valid.shape)} (batch, leads * "
                             f"patches, lead-major), got {shape}")
        mask = ecg_mask.bool().to(valid.device)
        counts = mask.sum(-1)
        if (counts != counts[0]).any():
            raise ValueError(f"ecg_mask must mask the same number of tokens in every row, got {counts.tolist()}")
        if bool((~mask).sum(-1).eq(0).any()):
            raise ValueError("ecg_mask masks every token; leave at least one visible")
        return mask

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
    ) -> CGDMERForPreTrainingOutput:
        """Masked ECG modeling on `ecg_values`; with `input_ids` (clean report tokens) also the SigLIP and
        orthogonality losses; with `mlm_input_ids` + `mlm_labels` (masked copy, -100 = not masked) the masked
        report loss. Without reports the model trains as an ECG-only masked autoencoder.

        `ecg_mask` (`(batch, leads * patches)` bool, lead-major, True = masked, the same count in every row)
        replaces the drawn mask, e.g. to ask the model for chosen leads or time spans."""
        cfg, model = self.config, self.cgdmer
        ecg_values, lead_mask, ecg_attention_mask = self._prepare_ecg_inputs(ecg_values, lead_mask,
                                                                             ecg_attention_mask)
        valid = model.ecg_model.embeddings.token_validity(lead_mask, ecg_attention_mask)
        if ecg_mask is None:
            generator = None if self.training else torch.Generator(device="cpu").manual_seed(0)
            mask = self.generate_ecg_mask(valid, generator)
        else:
            mask = self._check_ecg_mask(ecg_mask, valid)
        # Visible tokens first, in grid order (a stable sort keeps a fixed shape, no nonzero()).
        ids_keep = mask.to(torch.int8).argsort(dim=-1, stable=True)[:, : int((~mask[0]).sum())]
        ecg = model.encode_ecg(ecg_values, lead_mask, ecg_attention_mask, ids_keep)
        text_embeds = None
        out: dict[str, Optional[torch.Tensor]] = {}

        def ecg_loss() -> torch.Tensor:
            out["ecg_reconstruction"] = self.ecg_decoder(ecg.fused(), ids_keep, valid)
            per_token = ((out["ecg_reconstruction"] - self._reconstruction_target(ecg_values)) ** 2).mean(-1)
            counted = (mask & valid).to(per_token.dtype)
            return (per_token * counted).sum() / counted.sum().clamp(min=1.0)

        losses = {"ecg_loss": (cfg.ecg_loss_weight, self._component(cfg.ecg_loss_weight, ecg_loss))}
        ecg_embeds, ecg_specific = model.embed(ecg, ECG_MODALITY)

        if input_ids is not None:
            text = model.encode_text(*self._prepare_text_inputs(input_ids, attention_mask))
            text_embeds, text_specific = model.embed(text, TEXT_MODALITY)
            losses["alignment_loss"] = (cfg.alignment_loss_weight, self._component(
                cfg.alignment_loss_weight,
                lambda: sigmoid_contrastive_loss(ecg_embeds, text_embeds, model.logit_scale,
                                                 model.logit_bias)))
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
                out["mlm_logits"] = self.mlm_head(masked.fused())
                if not mlm_labels.ne(-100).any():
                    return out["mlm_logits"].sum() * 0.0
                return F.cross_entropy(out["mlm_logits"].reshape(-1, out["mlm_logits"].shape[-1]).float(),
                                       mlm_labels.reshape(-1), ignore_index=-100)

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
        )


# --------------------------------------------------------------------------------------------------------------
# Downstream classification
# --------------------------------------------------------------------------------------------------------------


class CGDMERForECGClassification(CGDMERPreTrainedModel):
    """Multi-label (default) or single-label ECG classifier: a linear head on the pooled `[shared; specific]`
    ECG features. `config.freeze_backbone=True` (or `freeze_backbone()`) trains the head only: a linear probe.

    Loads from a pretraining or dual-encoder checkpoint; the text tower is dropped and the head starts fresh.
    """

    _keys_to_ignore_on_load_unexpected = [r"text_model\.", r"text_to_shared\.", r"text_specific_",
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

    def forward(
        self,
        ecg_values: torch.FloatTensor,
        lead_mask: Optional[torch.Tensor] = None,
        ecg_attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
    ) -> CGDMERECGClassifierOutput:
        features = self.cgdmer.get_ecg_representation(ecg_values, lead_mask, ecg_attention_mask)
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
        return CGDMERECGClassifierOutput(loss=loss, logits=logits, ecg_representation=features)


__all__ = [
    "CGDMERPreTrainedModel",
    "CGDMERModel",
    "CGDMERForPreTraining",
    "CGDMERForECGClassification",
    "sigmoid_contrastive_loss",
    "orthogonality_loss",
]
