"""CG-DMER configuration: a composite config with ECG and text sub-configs (SigLIP style)."""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from transformers import PretrainedConfig

STANDARD_LEADS = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"]
ATTENTION_LAYOUTS = ("joint", "divided")
# ECG config fields added after v0.1.0, with the values that reproduce the architecture of configs saved without
# them (the defaults of new configs differ).
LEGACY_DEFAULTS: dict[str, Any] = {"encoder_attention": "joint", "decoder_attention": "joint",
                                   "decoder_slot_pooling": False}
ALIGNMENT_POSITIVES = ("diagonal", "identical_reports")


ECG_MODEL_TYPE, MODEL_TYPE = "cgdmer_ecg_model", "cgdmer"


def num_samples(sampling_rate: float, duration: float) -> int:
    """Samples per lead of an ECG of `duration` seconds at `sampling_rate` Hz: `round(sampling_rate * duration)`
    (the model's input length; the feature extractor and the model card use this one function)."""
    return int(round(sampling_rate * duration))


# --------------------------------------------------------------------------------------------------------------
# Masking strategies of masked ECG modeling: name -> function; `CGDMERForPreTraining.generate_ecg_mask` calls the
# configured one, and `CGDMEREcgConfig` accepts exactly these names. A strategy returns the tokens it masks first,
# `(batch, groups, patches)` bool, drawing from `rand(batch, size)` (uniform [0, 1): that ECG's own noise, see
# `CGDMERForPreTraining.sample_noise`); random valid tokens then fill the mask up to `mask_ratio`. A new strategy is one function plus one line in `MASKING_STRATEGIES`.
# --------------------------------------------------------------------------------------------------------------
MaskingStrategy = Callable[["CGDMEREcgConfig", int, int, int, Callable[..., torch.Tensor], torch.device],
                           torch.Tensor]


def random_masking(cfg: "CGDMEREcgConfig", batch: int, groups: int, patches: int,
                   rand: Callable[..., torch.Tensor], device: torch.device) -> torch.Tensor:
    """Random tokens only (an ablation): nothing is masked first."""
    return torch.zeros(batch, groups, patches, dtype=torch.bool, device=device)


def spatial_temporal_masking(cfg: "CGDMEREcgConfig", batch: int, groups: int, patches: int,
                             rand: Callable[..., torch.Tensor], device: torch.device) -> torch.Tensor:
    """`round(lead_mask_ratio * leads)` whole leads (when there is more than one token group) and
    `round(time_mask_ratio * patches / time_mask_span)` time spans of `time_mask_span` patches, across all leads."""
    forced = torch.zeros(batch, groups, patches, dtype=torch.bool, device=device)
    if groups > 1:
        leads = rand(batch, groups).argsort(-1)[:, : round(cfg.lead_mask_ratio * groups)]
        forced |= torch.zeros(batch, groups, dtype=torch.bool, device=device).scatter(1, leads, True)[..., None]
    span, slots = cfg.time_mask_span, patches // cfg.time_mask_span
    chosen = rand(batch, slots).argsort(-1)[:, : round(cfg.time_mask_ratio * patches / span)]
    spans = torch.zeros(batch, slots, dtype=torch.bool, device=device).scatter(1, chosen, True)
    spans = F.pad(spans.repeat_interleave(span, dim=1), (0, patches - slots * span), value=False)
    forced |= spans[:, None, :]
    return forced


MASKING_STRATEGIES: dict[str, MaskingStrategy] = {
    "spatial_temporal": spatial_temporal_masking,
    "random": random_masking,
}


def with_legacy_defaults(config_dict: dict[str, Any]) -> dict[str, Any]:
    """A copy of a saved composite or ECG config dict with `LEGACY_DEFAULTS` filled in where a field is absent."""
    model_type = config_dict.get("model_type")
    if model_type == MODEL_TYPE or "ecg_config" in config_dict:
        return {**config_dict, "ecg_config": with_legacy_defaults(config_dict.get("ecg_config") or {})}
    if model_type not in (None, ECG_MODEL_TYPE):
        return config_dict
    return {**LEGACY_DEFAULTS, **config_dict}


def checked_centre(centre: Any, projection_dim: int) -> Optional[list[float]]:
    """`zero_shot_centre` as a list of `projection_dim` finite floats (or `None`); anything else is refused."""
    if centre is None:
        return None
    try:
        values = [float(v) for v in centre]
    except (TypeError, ValueError):
        raise ValueError(f"zero_shot_centre must be a flat list of {projection_dim} numbers, got "
                         f"{type(centre).__name__} {str(centre)[:40]}")
    if len(values) != projection_dim or not all(math.isfinite(v) for v in values):
        raise ValueError(f"zero_shot_centre must hold {projection_dim} finite numbers (projection_dim), got "
                         f"{len(values)}" + ("" if len(values) != projection_dim else " with a NaN or infinity"))
    return values


def checked_report_bank(reports: Any) -> Optional[dict[str, int]]:
    """`zero_shot_reports` as `{report text: count}` with non-empty texts and positive integer counts (or `None`)."""
    if reports is None:
        return None
    if not isinstance(reports, dict) or not all(
            isinstance(t, str) and t.strip() and isinstance(c, int) and not isinstance(c, bool) and c > 0
            for t, c in reports.items()):
        raise ValueError("zero_shot_reports must be a dict {report text: positive integer count}, got "
                         f"{type(reports).__name__} {str(reports)[:60]}")
    return dict(reports)


class CGDMEREcgConfig(PretrainedConfig):
    r"""Configuration of the ECG tower: tokenisation, backbone, masking and the masked-ECG decoder.

    Args:
        sampling_rate (`int`, defaults to 100): sampling rate (Hz) the model expects.
        duration (`float`, defaults to 10.0): seconds of signal per ECG; `sampling_rate * duration` samples.
        patch_size (`int`, defaults to 25): samples per patch (0.25 s at 100 Hz).
        lead_names (`list[str]`): lead order of `ecg_values` (standard 12-lead order by default).
        token_mode (`str`, defaults to `"lead_patch"`): `"lead_patch"` makes one token per lead and patch
            (attention across leads and time); `"all_leads"` makes one lead-agnostic token per time patch
            from all leads together (MERL-like, an ablation).
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: backbone transformer size.
        hidden_act, layer_norm_eps, hidden_dropout_prob, attention_dropout: backbone details.
        decoder_hidden_size, decoder_num_hidden_layers, decoder_num_attention_heads, decoder_intermediate_size:
            the light masked-ECG decoder used in pretraining only.
        masking_strategy (`str`, defaults to `"spatial_temporal"`): a name of `MASKING_STRATEGIES`:
            `"spatial_temporal"` masks whole leads, whole time spans across all leads and random patches; `"random"`
            masks random patches only (an ablation).
        mask_ratio (`float`, defaults to 0.75): fraction of all tokens masked in pretraining.
        lead_mask_ratio (`float`, defaults to 0.25): fraction of leads masked whole (spatial masking).
        time_mask_ratio (`float`, defaults to 0.25): fraction of time patches masked across all leads.
        time_mask_span (`int`, defaults to 2): length in patches of each masked time span.
        norm_pix_loss (`bool`, defaults to `True`): reconstruct per-patch normalised targets.
        encoder_attention (`str`, *optional*): `"divided"` runs each backbone layer as attention across time within
            a lead, then across leads at one time slot (TimeSformer-style; needs `token_mode="lead_patch"`);
            `"joint"` attends over all leads x patches at once. Default: `"divided"` for `"lead_patch"` tokens,
            `"joint"` for `"all_leads"` tokens.
        decoder_attention (`str`, *optional*): the same choice for the masked-ECG decoder.
        decoder_slot_pooling (`bool`, defaults to `False`): every decoder token also receives the mean of the visible
            tokens at its own time slot (over leads), a parameter-free spatial path for reconstruction. It speeds up
            early training on the training masks but does not carry over to other mask patterns (the mean forgets
            which lead a value came from), so divided attention alone routes by default.
        position_init_std (`float`, *optional*): initial standard deviation of the learned lead and time
            embeddings (default: the model's `initializer_range`, 0.02).

    Configs saved before `encoder_attention`, `decoder_attention` and `decoder_slot_pooling` existed load with
    the values that reproduce their architecture (`"joint"`, `"joint"`, `False`), see `LEGACY_DEFAULTS`.
    """

    model_type = ECG_MODEL_TYPE
    base_config_key = "ecg_config"

    def __init__(
        self,
        sampling_rate: int = 100,
        duration: float = 10.0,
        patch_size: int = 25,
        lead_names: Optional[list[str]] = None,
        token_mode: str = "lead_patch",
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-6,
        hidden_dropout_prob: float = 0.0,
        attention_dropout: float = 0.0,
        decoder_hidden_size: int = 256,
        decoder_num_hidden_layers: int = 4,
        decoder_num_attention_heads: int = 8,
        decoder_intermediate_size: int = 1024,
        masking_strategy: str = "spatial_temporal",
        mask_ratio: float = 0.75,
        lead_mask_ratio: float = 0.25,
        time_mask_ratio: float = 0.25,
        time_mask_span: int = 2,
        norm_pix_loss: bool = True,
        encoder_attention: Optional[str] = None,
        decoder_attention: Optional[str] = None,
        decoder_slot_pooling: bool = False,
        position_init_std: Optional[float] = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.sampling_rate = sampling_rate
        self.duration = duration
        self.patch_size = patch_size
        self.lead_names = list(lead_names) if lead_names is not None else list(STANDARD_LEADS)
        self.token_mode = token_mode
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_dropout = attention_dropout
        self.decoder_hidden_size = decoder_hidden_size
        self.decoder_num_hidden_layers = decoder_num_hidden_layers
        self.decoder_num_attention_heads = decoder_num_attention_heads
        self.decoder_intermediate_size = decoder_intermediate_size
        self.masking_strategy = masking_strategy
        self.mask_ratio = mask_ratio
        self.lead_mask_ratio = lead_mask_ratio
        self.time_mask_ratio = time_mask_ratio
        self.time_mask_span = time_mask_span
        self.norm_pix_loss = norm_pix_loss
        default_attention = "divided" if token_mode == "lead_patch" else "joint"
        self.encoder_attention = encoder_attention or default_attention
        self.decoder_attention = decoder_attention or default_attention
        self.decoder_slot_pooling = decoder_slot_pooling
        self.position_init_std = position_init_std
        self._validate()

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any):
        """`PretrainedConfig.from_dict`; a saved config that lacks a field added later gets its legacy value."""
        return super().from_dict(with_legacy_defaults(config_dict), **kwargs)

    @property
    def num_leads(self) -> int:
        return len(self.lead_names)

    @property
    def num_samples(self) -> int:
        """Samples per lead the model takes: `sampling_rate * duration`."""
        return num_samples(self.sampling_rate, self.duration)

    @property
    def num_patches(self) -> int:
        """Time patches per lead."""
        return self.num_samples // self.patch_size

    def _validate(self) -> None:
        if self.token_mode not in ("lead_patch", "all_leads"):
            raise ValueError(f"token_mode must be 'lead_patch' or 'all_leads', got {self.token_mode!r}")
        for name in ("encoder_attention", "decoder_attention"):
            value = getattr(self, name)
            if value not in ATTENTION_LAYOUTS:
                raise ValueError(f"{name} must be one of {list(ATTENTION_LAYOUTS)}, got {value!r}")
            if value == "divided" and self.token_mode != "lead_patch":
                raise ValueError(f"{name}='divided' attends across leads and needs token_mode='lead_patch' "
                                 f"(got {self.token_mode!r}); set {name}='joint'")
        if self.position_init_std is not None and self.position_init_std <= 0:
            raise ValueError(f"position_init_std must be positive, got {self.position_init_std}")
        if self.masking_strategy not in MASKING_STRATEGIES:
            names = " or ".join(f"'{name}'" for name in MASKING_STRATEGIES)
            raise ValueError(f"masking_strategy must be {names}, got {self.masking_strategy!r}")
        if self.num_samples % self.patch_size:
            raise ValueError(
                f"sampling_rate * duration = {self.num_samples} samples is not a multiple of "
                f"patch_size = {self.patch_size}"
            )
        if self.hidden_size % self.num_attention_heads or self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError("hidden sizes must be divisible by their numbers of attention heads")
        for name in ("mask_ratio", "lead_mask_ratio", "time_mask_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.masking_strategy == "spatial_temporal" and self.token_mode == "lead_patch":
            leads = round(self.lead_mask_ratio * self.num_leads)
            spans = round(self.time_mask_ratio * self.num_patches / self.time_mask_span)
            forced = leads * self.num_patches + spans * self.time_mask_span * (self.num_leads - leads)
            total = round(self.mask_ratio * self.num_leads * self.num_patches)
            if forced > total:
                raise ValueError(
                    f"lead_mask_ratio={self.lead_mask_ratio} and time_mask_ratio={self.time_mask_ratio} mask "
                    f"{forced} tokens, more than mask_ratio={self.mask_ratio} allows ({total})"
                )


class CGDMERTextConfig(PretrainedConfig):
    r"""Configuration of the report (text) tower: a BERT-style encoder and its masked-report head.

    Args:
        vocab_size (`int`): size of the report tokenizer's vocabulary.
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size: encoder size.
        max_position_embeddings (`int`, defaults to 128): longest report in tokens.
        hidden_act, layer_norm_eps, hidden_dropout_prob, attention_dropout: encoder details.
        pad_token_id, mask_token_id: special token ids of the tokenizer.
        mlm_probability (`float`, defaults to 0.15): fraction of report tokens masked in pretraining.
    """

    model_type = "cgdmer_text_model"
    base_config_key = "text_config"

    def __init__(
        self,
        vocab_size: int = 8192,
        hidden_size: int = 768,
        num_hidden_layers: int = 6,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        max_position_embeddings: int = 128,
        hidden_act: str = "gelu",
        layer_norm_eps: float = 1e-6,
        hidden_dropout_prob: float = 0.0,
        attention_dropout: float = 0.0,
        pad_token_id: int = 0,
        mask_token_id: int = 4,
        mlm_probability: float = 0.15,
        **kwargs: Any,
    ):
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = max_position_embeddings
        self.hidden_act = hidden_act
        self.layer_norm_eps = layer_norm_eps
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_dropout = attention_dropout
        self.mask_token_id = mask_token_id
        self.mlm_probability = mlm_probability
        if hidden_size % num_attention_heads:
            raise ValueError("text hidden_size must be divisible by num_attention_heads")


# Size presets. `tiny` is for tests, `small` trains on 2 CPU cores, `base` is paper scale (GPU).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "ecg_config": dict(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
            decoder_intermediate_size=64,
        ),
        "text_config": dict(
            vocab_size=2048, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64,
        ),
        "shared_hidden_size": 32, "shared_num_hidden_layers": 1, "specific_num_hidden_layers": 1,
        "projection_dim": 16,
    },
    "small": {
        "ecg_config": dict(
            hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
            decoder_hidden_size=64, decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
            decoder_intermediate_size=256,
        ),
        "text_config": dict(
            vocab_size=4096, hidden_size=128, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512,
            max_position_embeddings=128,
        ),
        "shared_hidden_size": 128, "shared_num_hidden_layers": 1, "specific_num_hidden_layers": 1,
        "projection_dim": 128,
    },
    "base": {},
}


class CGDMERConfig(PretrainedConfig):
    r"""Configuration of a CG-DMER model (ECG tower, report tower, shared and specific encoders, losses).

    `CGDMERConfig()` is the paper-scale `base` preset; `CGDMERConfig.from_preset("tiny" | "small" | "base")`
    gives the others.

    Args:
        ecg_config (`dict` or `CGDMEREcgConfig`): the ECG tower.
        text_config (`dict` or `CGDMERTextConfig`): the report tower.
        shared_hidden_size (`int`, defaults to 768): width of the shared and specific encoders.
        shared_num_hidden_layers (`int`, defaults to 2): layers of the modality-shared encoder (one set of
            weights for both modalities, told apart by a modality embedding).
        specific_num_hidden_layers (`int`, defaults to 2): layers of each modality-specific encoder.
        shared_num_attention_heads (`int`, defaults to 12): heads in the shared and specific encoders.
        disentangle (`bool`, defaults to `True`): build the modality-specific branch and the orthogonality
            loss; `False` is the "no disentanglement" ablation (the shared branch alone).
        projection_dim (`int`, defaults to 256): size of the pooled, projected embeddings.
        logit_scale_init_value (`float`, defaults to log 10): initial log temperature of the sigmoid loss.
        logit_bias_init_value (`float`, defaults to -10): initial bias of the sigmoid loss.
        ecg_loss_weight, text_loss_weight, alignment_loss_weight, orthogonality_loss_weight (`float`): weights of
            the masked-ECG MSE, masked-report cross-entropy, SigLIP and orthogonality losses. A weight of 0 skips
            the gradient through that head (the component is still reported, detached). `ecg_loss_weight`
            defaults to 5: at weight 1 the SigLIP gradient on the ECG backbone is about 10x the masked-ECG one.
        alignment_positives (`str`, defaults to `"diagonal"`): the positives of the SigLIP loss. `"diagonal"`
            (SigLIP's target) counts an ECG's own report only, so copies of a repeated report are negatives; with
            `"identical_reports"` an ECG's positives are all reports in the batch identical (token for token) to its
            own (the `cgdmer_report_positives` row of `benchmarks/ptbxl_mini.py`).
        freeze_backbone (`bool`, defaults to `False`): in `CGDMERForECGClassification`, train the head only
            (linear probing).
        tie_word_embeddings (`bool`, defaults to `False`): tie the masked-report decoder of `CGDMERForPreTraining`
            to the report token embeddings (needs `shared_hidden_size == text_config.hidden_size`).
        zero_shot_calibration (`dict`, *optional*): a Platt calibration of the zero-shot probabilities, fitted on
            a validation split (`cgdmer_hf.evaluation.calibrate_zero_shot`): `{"method": "platt", "scale": a,
            "bias": b, "per_label": {label key: [a, b]}, "fitted_on": {...}}`. A label's score becomes
            `sigmoid(a * logit + b)` (`a >= 0`) with its own pair when its text (`CGDMERModel.zero_shot_label_key`)
            has one, else the shared pair; `None` (default) leaves the raw `sigmoid(logit)`.
        zero_shot_centre (`list[float]`, *optional*): the mean shared embedding of the pretraining reports (each
            L2-normalised), `projection_dim` numbers, set at the end of pretraining (`CGDMERModel.
            fit_zero_shot_centre`). When set, a zero-shot logit is `exp(logit_scale) * (ecg . label - (ecg . centre -
            zero_shot_centre_offset)) + logit_bias`: an ECG's likeness to the average report (a normal ECG resembles
            every report) no longer raises all its labels at once. `None`: the plain SigLIP logit.
        zero_shot_centre_offset (`float`, defaults to 0): the mean of `ecg . centre` over the pretraining ECGs, so
            that centring leaves the average logit where SigLIP trained it.
        zero_shot_reports (`dict[str, int]`, *optional*): the zero-shot report bank, the most frequent distinct
            pretraining reports (cleaned) with their counts, set with the centre (`CGDMERModel.fit_zero_shot_centre`,
            at most `ZERO_SHOT_BANK_SIZE`). When set, a label that shares a word with the bank is scored through it
            (`CGDMERModel.zero_shot_labels`, `zero_shot_logits`): its probability is the expected share of its words
            in the bank reports, each weighted by its count and `exp(exp(logit_scale) * ecg . report)`, so that
            "myocardial infarction" scores by the reports that name one; its embedding is the weighted mean of
            those reports (`zero_shot_label_embeddings`). `None`: the description's own embedding and logit.

    Attention: `attn_implementation="sdpa"` (default) or `"eager"` (the one that returns attention weights), the
    same for every encoder.
    """

    model_type = MODEL_TYPE
    sub_configs = {"ecg_config": CGDMEREcgConfig, "text_config": CGDMERTextConfig}
    # Outputs the Trainer must not gather in evaluation (features and per-token tensors, not predictions).
    keys_to_ignore_at_inference = ["ecg_representation", "ecg_reconstruction", "ecg_mask", "mlm_logits",
                                   "ecg_embeds", "text_embeds", "logit_scale", "logit_bias", "ecg_model_output",
                                   "text_model_output", "hidden_states", "attentions", "ecg_hidden_states",
                                   "ecg_attentions", "text_hidden_states", "text_attentions"]

    def __init__(
        self,
        ecg_config: Optional[dict | CGDMEREcgConfig] = None,
        text_config: Optional[dict | CGDMERTextConfig] = None,
        shared_hidden_size: int = 768,
        shared_num_hidden_layers: int = 2,
        specific_num_hidden_layers: int = 2,
        shared_num_attention_heads: Optional[int] = None,
        disentangle: bool = True,
        projection_dim: int = 256,
        logit_scale_init_value: float = 2.302585092994046,
        logit_bias_init_value: float = -10.0,
        ecg_loss_weight: float = 5.0,
        text_loss_weight: float = 1.0,
        alignment_loss_weight: float = 1.0,
        orthogonality_loss_weight: float = 0.1,
        alignment_positives: str = "diagonal",
        initializer_range: float = 0.02,
        freeze_backbone: bool = False,
        tie_word_embeddings: bool = False,
        zero_shot_calibration: Optional[dict] = None,
        zero_shot_centre: Optional[list[float]] = None,
        zero_shot_centre_offset: float = 0.0,
        zero_shot_reports: Optional[dict[str, int]] = None,
        **kwargs: Any,
    ):
        if isinstance(ecg_config, CGDMEREcgConfig):
            ecg_config = ecg_config.to_dict()
        if isinstance(text_config, CGDMERTextConfig):
            text_config = text_config.to_dict()
        self.ecg_config = CGDMEREcgConfig(**(ecg_config or {}))
        self.text_config = CGDMERTextConfig(**(text_config or {}))
        self.shared_hidden_size = shared_hidden_size
        self.shared_num_hidden_layers = shared_num_hidden_layers
        self.specific_num_hidden_layers = specific_num_hidden_layers
        self.shared_num_attention_heads = shared_num_attention_heads or max(1, shared_hidden_size // 64)
        self.disentangle = disentangle
        self.projection_dim = projection_dim
        self.logit_scale_init_value = logit_scale_init_value
        self.logit_bias_init_value = logit_bias_init_value
        self.ecg_loss_weight = ecg_loss_weight
        self.text_loss_weight = text_loss_weight
        self.alignment_loss_weight = alignment_loss_weight
        self.orthogonality_loss_weight = orthogonality_loss_weight
        if alignment_positives not in ALIGNMENT_POSITIVES:
            raise ValueError(f"alignment_positives must be one of {ALIGNMENT_POSITIVES}, got {alignment_positives!r}")
        self.alignment_positives = alignment_positives
        self.initializer_range = initializer_range
        self.freeze_backbone = freeze_backbone
        self.zero_shot_calibration = zero_shot_calibration
        self.zero_shot_centre = checked_centre(zero_shot_centre, projection_dim)
        self.zero_shot_centre_offset = float(zero_shot_centre_offset)
        self.zero_shot_reports = checked_report_bank(zero_shot_reports)
        kwargs.setdefault("problem_type", "multi_label_classification")
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)
        if shared_hidden_size % self.shared_num_attention_heads:
            raise ValueError("shared_hidden_size must be divisible by shared_num_attention_heads")
        if tie_word_embeddings and shared_hidden_size != self.text_config.hidden_size:
            raise ValueError(f"tie_word_embeddings=True needs shared_hidden_size ({shared_hidden_size}) equal to "
                             f"text_config.hidden_size ({self.text_config.hidden_size})")

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any):
        """`PretrainedConfig.from_dict`; a saved config that lacks a field added later gets its legacy value."""
        return super().from_dict(with_legacy_defaults(config_dict), **kwargs)

    @property
    def custom_pipelines(self) -> dict[str, Any]:
        """The pipelines saved with the model (`config.json` keeps them for `trust_remote_code=True` loads).

        Where the tasks are registered locally (`import cgdmer_hf` registers `zero-shot-ecg-classification`),
        this reads as empty, so `pipeline(task, model=folder)` uses the installed pipeline and runs no remote code.
        """
        stored = self.__dict__.get("custom_pipelines", {})
        if stored:
            from transformers.pipelines import PIPELINE_REGISTRY

            if all(task in PIPELINE_REGISTRY.get_supported_tasks() for task in stored):
                return {}
        return stored

    @custom_pipelines.setter
    def custom_pipelines(self, value: dict[str, Any]) -> None:
        self.__dict__["custom_pipelines"] = value

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "CGDMERConfig":
        """Build a preset config (`tiny`, `small`, `base`); `overrides` update top-level fields and, given as
        dicts, the `ecg_config` / `text_config` fields."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        preset = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[name].items()}
        for key in ("ecg_config", "text_config"):
            if key in overrides:
                preset[key] = {**preset.get(key, {}), **overrides.pop(key)}
        preset.update(overrides)
        return cls(**preset)
