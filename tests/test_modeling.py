"""Model core: shapes, masking, losses, lead identity, input checks and save/load round trips."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoModelForSequenceClassification

from cgdmer_hf import (
    CGDMERConfig,
    CGDMERForECGClassification,
    CGDMERForPreTraining,
    CGDMERModel,
)
from cgdmer_hf.modeling_cgdmer import report_keys, sigmoid_contrastive_loss

B, T, L = 3, 1000, 12


def tiny(**overrides) -> CGDMERConfig:
    return CGDMERConfig.from_preset("tiny", **overrides)


def text_batch(batch: int = B, length: int = 9, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 500, (batch, length), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3
    attention = torch.ones_like(ids)
    attention[0, -3:] = 0
    labels = torch.full_like(ids, -100)
    masked = ids.clone()
    labels[:, 2], masked[:, 2] = ids[:, 2], 4
    return dict(input_ids=ids, attention_mask=attention, mlm_input_ids=masked, mlm_labels=labels)


@pytest.fixture(scope="module")
def ecg() -> torch.Tensor:
    return torch.randn(B, L, T, generator=torch.Generator().manual_seed(1))


# ---- config ------------------------------------------------------------------------------------------------


def test_presets_and_default_is_base():
    assert CGDMERConfig().to_dict()["ecg_config"]["hidden_size"] == 768
    assert CGDMERConfig.from_preset("base").ecg_config.hidden_size == 768
    assert CGDMERConfig.from_preset("small").ecg_config.hidden_size == 128
    assert tiny().ecg_config.num_samples == 1000 and tiny().ecg_config.num_patches == 40
    with pytest.raises(ValueError, match="Unknown preset 'huge'"):
        CGDMERConfig.from_preset("huge")
    with pytest.raises(ValueError, match="mask_ratio"):
        tiny(ecg_config=dict(mask_ratio=0.3, lead_mask_ratio=0.5))


def test_config_round_trip(tmp_path):
    cfg = tiny(ecg_config=dict(lead_mask_ratio=0.2), alignment_loss_weight=0.5)
    cfg.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, CGDMERConfig)
    assert loaded.ecg_config.lead_mask_ratio == 0.2 and loaded.alignment_loss_weight == 0.5
    assert loaded.ecg_config.hidden_size == 32 and loaded.text_config.vocab_size == cfg.text_config.vocab_size


# ---- shapes and losses -------------------------------------------------------------------------------------


@pytest.mark.parametrize("token_mode", ["lead_patch", "all_leads"])
@pytest.mark.parametrize("disentangle", [True, False])
def test_pretraining_output_shapes_and_finite_losses(ecg, token_mode, disentangle):
    torch.manual_seed(0)
    cfg = tiny(disentangle=disentangle, ecg_config=dict(token_mode=token_mode))
    model = CGDMERForPreTraining(cfg).train()
    out = model(ecg, **text_batch())
    assert list(out.keys())[0] == "loss"
    components = ["ecg_loss", "alignment_loss", "text_loss"] + (["orthogonality_loss"] if disentangle else [])
    for name in ["loss"] + components:
        assert out[name].dim() == 0 and torch.isfinite(out[name]), name
    assert (out.orthogonality_loss is None) == (not disentangle)
    tokens = 480 if token_mode == "lead_patch" else 40
    patch_dim = 25 if token_mode == "lead_patch" else 300
    assert out.ecg_reconstruction.shape == (B, tokens, patch_dim)
    assert out.ecg_mask.shape == (B, tokens)
    assert out.mlm_logits.shape == (B, 9, cfg.text_config.vocab_size)
    assert out.ecg_embeds.shape == out.text_embeds.shape == (B, cfg.projection_dim)
    expected = (cfg.ecg_loss_weight * out.ecg_loss + out.text_loss + out.alignment_loss
                + (cfg.orthogonality_loss_weight * out.orthogonality_loss if disentangle else 0))
    torch.testing.assert_close(out.loss, expected)


def test_dual_encoder_and_classifier_shapes(ecg):
    cfg = tiny(num_labels=5)
    model = CGDMERModel(cfg).eval()
    text = text_batch()
    out = model(ecg, input_ids=text["input_ids"], attention_mask=text["attention_mask"], return_loss=True)
    assert out.logits_per_ecg.shape == (B, B) and torch.equal(out.logits_per_text, out.logits_per_ecg.t())
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.ecg_embeds.norm(dim=-1), torch.ones(B))
    assert model.get_ecg_features(ecg).pooler_output.shape == (B, cfg.projection_dim)
    assert model.get_text_features(text["input_ids"]).pooler_output.shape == (B, cfg.projection_dim)
    assert model.get_ecg_representation(ecg).shape == (B, 2 * cfg.shared_hidden_size)
    clf = CGDMERForECGClassification(cfg)
    res = clf(ecg, labels=torch.ones(B, 5))
    assert res.logits.shape == (B, 5) and torch.isfinite(res.loss)
    assert not hasattr(clf.cgdmer, "text_model")


def test_sigmoid_loss_matches_reference():
    g = torch.Generator().manual_seed(0)
    ecg_emb = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    txt_emb = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    scale, bias = torch.tensor(2.3), torch.tensor(-3.0)
    total = 0.0
    for i in range(4):
        for j in range(4):
            z = float(scale.exp()) * float(ecg_emb[i] @ txt_emb[j]) + float(bias)
            y = 1.0 if i == j else -1.0
            total += -torch.nn.functional.logsigmoid(torch.tensor(y * z)).item()
    reference = total / 4
    assert sigmoid_contrastive_loss(ecg_emb, txt_emb, scale, bias).item() == pytest.approx(reference, rel=1e-5)


def test_sigmoid_loss_counts_identical_reports_as_positives():
    g = torch.Generator().manual_seed(0)
    ecg_emb = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    txt_emb = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    scale, bias = torch.tensor(2.3), torch.tensor(-3.0)
    ids = torch.tensor([[5, 6, 7, 0], [5, 6, 7, 9], [5, 6, 7, 0], [1, 2, 0, 0]])  # rows 0 and 2: the same report
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]])
    keys = report_keys(ids, mask, 6)
    assert keys.shape == (4, 6) and (keys[0] == keys[2]).all() and not (keys[0] == keys[1]).all()
    same = {(0, 2), (2, 0)}
    total = 0.0
    for i in range(4):
        for j in range(4):
            z = float(scale.exp()) * float(ecg_emb[i] @ txt_emb[j]) + float(bias)
            y = 1.0 if i == j or (i, j) in same else -1.0
            total += -torch.nn.functional.logsigmoid(torch.tensor(y * z)).item()
    got = sigmoid_contrastive_loss(ecg_emb, txt_emb, scale, bias, keys)
    assert got.item() == pytest.approx(total / 4, rel=1e-5)
    distinct = report_keys(torch.arange(16).view(4, 4), torch.ones(4, 4), 6)  # all different: the diagonal target
    assert sigmoid_contrastive_loss(ecg_emb, txt_emb, scale, bias, distinct).item() == pytest.approx(
        sigmoid_contrastive_loss(ecg_emb, txt_emb, scale, bias).item(), rel=1e-6)


def test_alignment_positives_config():
    cfg = CGDMERConfig.from_preset("tiny", alignment_positives="identical_reports")
    assert CGDMERConfig.from_dict(cfg.to_dict()).alignment_positives == "identical_reports"
    saved = {k: v for k, v in cfg.to_dict().items() if k != "alignment_positives"}  # a config saved before the field
    assert CGDMERConfig.from_dict(saved).alignment_positives == "diagonal"
    with pytest.raises(ValueError, match="alignment_positives must be one of"):
        CGDMERConfig.from_preset("tiny", alignment_positives="same_label")
    torch.manual_seed(0)
    ecg = torch.randn(3, 12, 1000)
    ids = torch.tensor([[2, 7, 8, 3], [2, 7, 8, 3], [2, 9, 3, 0]])
    mask = (ids != 0).long()
    losses = {}
    for positives in ("identical_reports", "diagonal"):
        torch.manual_seed(0)
        model = CGDMERModel(CGDMERConfig.from_preset("tiny", alignment_positives=positives)).eval()
        losses[positives] = model(ecg, input_ids=ids, attention_mask=mask, return_loss=True).loss.item()
    assert losses["identical_reports"] != pytest.approx(losses["diagonal"])


# ---- masking -----------------------------------------------------------------------------------------------


def test_spatial_temporal_mask_ratios_are_exact():
    cfg = tiny(ecg_config=dict(mask_ratio=0.75, lead_mask_ratio=0.25, time_mask_ratio=0.25, time_mask_span=2))
    model = CGDMERForPreTraining(cfg)
    mask = model.generate_ecg_mask(torch.ones(64, 480, dtype=torch.bool), torch.Generator().manual_seed(0))
    mask = mask.view(64, 12, 40)
    assert (mask.sum((1, 2)) == 360).all()  # 0.75 * 480 tokens
    assert (mask.all(dim=2).sum(1) >= 3).all()  # at least 0.25 * 12 whole leads
    assert (mask.all(dim=1).sum(1) >= 10).all()  # at least 0.25 * 40 patches across every lead
    assert not torch.equal(mask[0], mask[1])


def test_spatial_and_temporal_masks_are_whole_leads_and_whole_spans():
    # mask_ratio equal to what the lead and time masks cover: no random patches on top, so counts are exact.
    # 3 leads * 40 patches + 10 patches * 9 other leads = 210 of 480 tokens.
    cfg = tiny(ecg_config=dict(mask_ratio=210 / 480, lead_mask_ratio=0.25, time_mask_ratio=0.25, time_mask_span=2))
    model = CGDMERForPreTraining(cfg)
    mask = model.generate_ecg_mask(torch.ones(32, 480, dtype=torch.bool), torch.Generator().manual_seed(0))
    mask = mask.view(32, 12, 40)
    assert (mask.sum((1, 2)) == 210).all()
    whole_leads = mask.all(dim=2)
    assert (whole_leads.sum(1) == 3).all()
    whole_times = mask.all(dim=1)
    assert (whole_times.sum(1) == 10).all()
    # Everything masked is in a whole lead or a whole time column (nothing else).
    assert torch.equal(mask, whole_leads[:, :, None] | whole_times[:, None, :])
    # Time spans come as aligned runs of time_mask_span = 2 patches.
    pairs = whole_times.view(32, 20, 2)
    assert torch.equal(pairs[..., 0], pairs[..., 1])
    # Different leads and spans for different samples.
    assert len({tuple(w.nonzero().flatten().tolist()) for w in whole_leads}) > 20


def test_random_masking_strategy_has_no_forced_structure():
    model = CGDMERForPreTraining(tiny(ecg_config=dict(masking_strategy="random")))
    mask = model.generate_ecg_mask(torch.ones(32, 480, dtype=torch.bool), torch.Generator().manual_seed(0))
    assert (mask.sum(1) == 360).all()
    assert mask.view(32, 12, 40).all(dim=2).sum() < 5  # a whole lead masked by chance is rare


def test_a_masking_strategy_is_one_function_in_the_registry(monkeypatch):
    """`MASKING_STRATEGIES` is what the config accepts and what `generate_ecg_mask` calls."""
    from cgdmer_hf import configuration_cgdmer

    with pytest.raises(ValueError, match="masking_strategy must be 'spatial_temporal' or 'random', got 'first_lead'"):
        tiny(ecg_config=dict(masking_strategy="first_lead"))

    def first_lead(cfg, batch, groups, patches, rand, device):
        forced = torch.zeros(batch, groups, patches, dtype=torch.bool, device=device)
        forced[:, 0] = True
        return forced

    monkeypatch.setitem(configuration_cgdmer.MASKING_STRATEGIES, "first_lead", first_lead)
    model = CGDMERForPreTraining(tiny(ecg_config=dict(masking_strategy="first_lead")))
    mask = model.generate_ecg_mask(torch.ones(4, 480, dtype=torch.bool), torch.Generator().manual_seed(0))
    assert mask.view(4, 12, 40)[:, 0].all() and (mask.sum(1) == 360).all()


def test_absent_leads_are_masked_before_present_ones():
    model = CGDMERForPreTraining(tiny(ecg_config=dict(masking_strategy="random")))
    valid = torch.ones(4, 12, 40, dtype=torch.bool)
    valid[:, 6:] = False  # six absent leads: 240 invalid tokens, 360 masked
    mask = model.generate_ecg_mask(valid.view(4, -1), torch.Generator().manual_seed(0)).view(4, 12, 40)
    assert mask[:, 6:].all()


def test_reconstruction_loss_counts_masked_patches_only(ecg, monkeypatch):
    model = CGDMERForPreTraining(tiny()).train()
    fixed = model.generate_ecg_mask(torch.ones(B, 480, dtype=torch.bool), torch.Generator().manual_seed(3))
    monkeypatch.setattr(model, "generate_ecg_mask", lambda valid, generator=None: fixed)
    target = model._reconstruction_target(ecg)
    # Perfect on masked patches, garbage on visible ones: zero loss.
    monkeypatch.setattr(model.ecg_decoder, "forward", lambda *a: target + 100.0 * (~fixed)[..., None])
    assert model(ecg).ecg_loss.item() == pytest.approx(0.0, abs=1e-6)
    # Off by one on every masked value: loss one.
    monkeypatch.setattr(model.ecg_decoder, "forward", lambda *a: target + fixed[..., None].float())
    assert model(ecg).ecg_loss.item() == pytest.approx(1.0, rel=1e-5)


def test_eval_mode_mask_is_deterministic_and_features_unmasked(ecg):
    model = CGDMERForPreTraining(tiny()).eval()
    assert torch.equal(model(ecg).ecg_mask, model(ecg).ecg_mask)
    dual = CGDMERModel(tiny()).eval()
    torch.testing.assert_close(dual.get_ecg_features(ecg).pooler_output, dual.get_ecg_features(ecg).pooler_output)


# ---- loss weights ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weight, head",
    [("ecg_loss_weight", "ecg_decoder"), ("text_loss_weight", "mlm_head"), ("alignment_loss_weight", "logit_bias")],
)
def test_zero_loss_weight_stops_gradient_through_head(ecg, weight, head):
    torch.manual_seed(0)
    model = CGDMERForPreTraining(tiny(**{weight: 0.0})).train()
    out = model(ecg, **text_batch())
    out.loss.backward()
    params = [p for n, p in model.named_parameters() if head in n]
    assert params and all(p.grad is None or not p.grad.any() for p in params)
    component = {"ecg_loss_weight": "ecg_loss", "text_loss_weight": "text_loss",
                 "alignment_loss_weight": "alignment_loss"}[weight]
    assert torch.isfinite(out[component]) and not out[component].requires_grad
    # The other heads still learn.
    assert any(p.grad is not None and p.grad.any() for n, p in model.named_parameters() if "cgdmer.ecg_model" in n)


def test_ecg_only_pretraining_without_reports(ecg):
    model = CGDMERForPreTraining(tiny()).train()
    out = model(ecg)
    assert out.text_loss is None and out.alignment_loss is None
    torch.testing.assert_close(out.loss, model.config.ecg_loss_weight * out.ecg_loss)


# ---- leads -------------------------------------------------------------------------------------------------


def test_lead_identity_changes_the_embedding():
    model = CGDMERModel(tiny()).eval()
    signal = torch.randn(1, T, generator=torch.Generator().manual_seed(5))
    as_lead_i, as_lead_ii = torch.zeros(1, L, T), torch.zeros(1, L, T)
    as_lead_i[0, 0], as_lead_ii[0, 1] = signal, signal
    mask_i, mask_ii = torch.zeros(1, L), torch.zeros(1, L)
    mask_i[0, 0], mask_ii[0, 1] = 1, 1
    emb_i = model.get_ecg_features(as_lead_i, mask_i).pooler_output
    emb_ii = model.get_ecg_features(as_lead_ii, mask_ii).pooler_output
    assert not torch.allclose(emb_i, emb_ii, atol=1e-4)


def test_masked_out_leads_do_not_influence_the_embedding(ecg):
    model = CGDMERModel(tiny()).eval()
    lead_mask = torch.ones(B, L)
    lead_mask[:, 3:9] = 0
    zeroed = ecg.clone()
    zeroed[:, 3:9] = 0
    garbage = ecg.clone()
    garbage[:, 3:9] = 1e3 * torch.randn(B, 6, T)
    torch.testing.assert_close(model.get_ecg_features(zeroed, lead_mask).pooler_output,
                               model.get_ecg_features(garbage, lead_mask).pooler_output)
    torch.testing.assert_close(model.get_ecg_representation(zeroed, lead_mask),
                               model.get_ecg_representation(garbage, lead_mask))
    assert not torch.allclose(model.get_ecg_features(ecg).pooler_output,
                              model.get_ecg_features(zeroed, lead_mask).pooler_output)


def test_padding_is_ignored(ecg):
    model = CGDMERModel(tiny()).eval()
    attention = torch.ones(B, T, dtype=torch.long)
    attention[:, 600:] = 0
    a, b = ecg.clone(), ecg.clone()
    a[:, :, 600:], b[:, :, 600:] = 0.0, 5.0
    torch.testing.assert_close(model.get_ecg_features(a, ecg_attention_mask=attention).pooler_output,
                               model.get_ecg_features(b, ecg_attention_mask=attention).pooler_output)
    # A shorter signal is padded and masked the same way.
    torch.testing.assert_close(model.get_ecg_features(a[:, :, :600]).pooler_output,
                               model.get_ecg_features(a, ecg_attention_mask=attention).pooler_output)


# ---- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda e: dict(ecg_values=e[0]), r"ecg_values must have shape \(batch, 12, 1000\)"),
        (lambda e: dict(ecg_values=e[:, :8]), r"ecg_values must have shape \(batch, 12, 1000\), got \(3, 8, 1000\)"),
        (lambda e: dict(ecg_values=torch.randn(1, 12, 1200)), "longer than the configured 1000"),
        (lambda e: dict(ecg_values=e.masked_fill(torch.rand_like(e) > 0.999, float("nan"))), "NaN"),
        (lambda e: dict(ecg_values=e, lead_mask=torch.zeros(B, 12)), "lead_mask marks no lead"),
        (lambda e: dict(ecg_values=e, lead_mask=torch.ones(B, 11)), r"lead_mask must have shape \(3, 12\)"),
        (lambda e: dict(ecg_values=e.long()), "floating point"),
        (lambda e: dict(ecg_values=e, input_ids=torch.randint(5, 9, (B, 200))), "max_position_embeddings"),
        (lambda e: dict(ecg_values=e, input_ids=torch.full((B, 5), 10**6)), "vocab_size"),
    ],
)
def test_bad_input_raises_value_error(ecg, make, message):
    model = CGDMERModel(tiny())
    with pytest.raises(ValueError, match=message):
        model(**make(ecg))


def test_checkpoint_with_missing_keys_raises(tmp_path):
    CGDMERModel(tiny()).save_pretrained(tmp_path / "dual")
    with pytest.raises(ValueError, match="missing keys: \\['ecg_decoder"):
        CGDMERForPreTraining.from_pretrained(tmp_path / "dual")
    other = tiny(ecg_config=dict(hidden_size=64, intermediate_size=64))
    CGDMERModel(other).save_pretrained(tmp_path / "wide")
    with pytest.raises(Exception):
        CGDMERModel.from_pretrained(tmp_path / "wide", config=tiny())


# ---- save / load -------------------------------------------------------------------------------------------


def test_round_trip_via_auto_classes(tmp_path, ecg):
    torch.manual_seed(0)
    model = CGDMERForPreTraining(tiny()).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["auto_map"]["AutoModel"] == "modeling_cgdmer.CGDMERModel"
    assert (tmp_path / "model.safetensors").exists() and (tmp_path / "modeling_cgdmer.py").exists()
    text = text_batch()
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, CGDMERForPreTraining)
    a, b = model(ecg, **text), loaded(ecg, **text)
    for key in ("loss", "ecg_loss", "text_loss", "alignment_loss", "orthogonality_loss"):
        assert torch.equal(a[key], b[key]), key
    dual = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(dual, CGDMERModel)
    assert torch.equal(dual.get_ecg_features(ecg).pooler_output, model.cgdmer.get_ecg_features(ecg).pooler_output)
    clf = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=4).eval()
    assert isinstance(clf, CGDMERForECGClassification)
    assert torch.equal(clf.cgdmer.get_ecg_representation(ecg), model.cgdmer.get_ecg_representation(ecg))


def test_fresh_process_without_package_loads_with_trust_remote_code(tmp_path, ecg):
    torch.manual_seed(0)
    model = CGDMERModel(tiny()).eval()
    model.save_pretrained(tmp_path / "model")
    torch.save(ecg, tmp_path / "ecg.pt")
    torch.save(model.get_ecg_features(ecg).pooler_output, tmp_path / "expected.pt")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["cgdmer_hf"] = None  # the package must not be importable
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        out = model.get_ecg_features(torch.load({str(tmp_path / "ecg.pt")!r})).pooler_output
        assert torch.equal(out, torch.load({str(tmp_path / "expected.pt")!r})), "outputs differ"
        print("OK", type(model).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK CGDMERModel" in result.stdout


def test_trainer_predictions_are_the_classifier_logits(tmp_path, ecg):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from cgdmer_hf.evaluation import ecg_collate

    model = CGDMERForECGClassification(tiny(num_labels=5)).eval()
    rows = Dataset.from_dict({"ecg_values": ecg.numpy().tolist(), "lead_mask": [[1] * 12] * B,
                              "labels": [[1.0, 0, 0, 0, 1]] * B})
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=2, report_to=[],
                             remove_unused_columns=False, label_names=["labels"], use_cpu=True)
    prediction = Trainer(model=model, args=args, data_collator=ecg_collate).predict(rows)
    assert isinstance(prediction.predictions, np.ndarray) and prediction.predictions.shape == (B, 5)
    np.testing.assert_allclose(prediction.predictions, model(ecg).logits.detach().numpy(), atol=1e-5)
    assert prediction.metrics["test_loss"] > 0


# ---- speed paths: same numbers, less work ------------------------------------------------------------------


def test_shared_features_skip_the_specific_encoder(ecg, one_thread):
    torch.manual_seed(0)
    model = CGDMERModel(tiny()).eval()
    calls = []
    model.ecg_specific_encoder.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        features = model.get_ecg_features(ecg).pooler_output
        assert not calls  # the shared embedding does not read the specific branch
        representation = model.get_ecg_representation(ecg)
        assert calls
        full = model(ecg_values=ecg)
    width = model.config.shared_hidden_size
    torch.testing.assert_close(F.normalize(features, dim=-1), full.ecg_embeds, rtol=0, atol=1e-6)
    torch.testing.assert_close(model.shared_projection(representation[:, :width]), features, rtol=0, atol=1e-6)


@pytest.mark.parametrize("length", [12, 16, 17, 120])
def test_half_precision_cpu_attention_matches_sdpa(length, one_thread):
    """Both softmax paths of the bf16 CPU attention (rows of up to 16 and longer) give SDPA's output
    and gradients within bf16 rounding; masked keys get no weight."""
    from cgdmer_hf.modeling_cgdmer import _cpu_half_precision_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(6, 4, length, 16) for _ in range(3))
    mask = torch.rand(6, 1, length, length) > 0.3
    mask[..., 0] = True  # every query has a key
    out_grad = torch.randn(6, length, 4, 16)
    grads = {}
    for name in ("sdpa", "bf16"):
        inputs = [t.clone().requires_grad_() for t in (q, k, v)]
        if name == "sdpa":
            out = F.scaled_dot_product_attention(*inputs, attn_mask=mask).transpose(1, 2)
        else:
            out = _cpu_half_precision_attention(torch.nn.Module(), *(t.bfloat16() for t in inputs), mask,
                                                scaling=16**-0.5)[0].float()
        (out * out_grad).sum().backward()
        grads[name] = (out, *(t.grad for t in inputs))
    for reference, half in zip(grads["sdpa"], grads["bf16"], strict=True):
        reference = reference.detach()  # bf16 rounding: about 1 % of the largest value at most
        torch.testing.assert_close(half, reference, atol=0.02 * reference.abs().max().item(), rtol=0)
    # a masked key's value does not reach the output
    changed = v.clone()
    changed[:, :, -1] += 100.0
    keep = mask.clone()
    keep[..., -1] = False
    a, b = (_cpu_half_precision_attention(torch.nn.Module(), q.bfloat16(), k.bfloat16(), t.bfloat16(), keep,
                                          scaling=0.25)[0] for t in (v, changed))
    torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_half_precision_cpu_training_uses_written_out_attention(ecg, one_thread, monkeypatch):
    from cgdmer_hf.modeling_cgdmer import _slow_half_precision_sdpa_backward

    half = torch.zeros(2, 3, requires_grad=True, dtype=torch.bfloat16)
    assert _slow_half_precision_sdpa_backward(half)
    assert not _slow_half_precision_sdpa_backward(half.detach())  # inference keeps SDPA
    assert not _slow_half_precision_sdpa_backward(torch.zeros(2, 3, requires_grad=True))  # fp32 keeps SDPA
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    torch.manual_seed(0)
    model = CGDMERForPreTraining(tiny()).train()
    batch = dict(ecg_values=ecg, noise=model.sample_noise(B, torch.Generator().manual_seed(3)), **text_batch())
    model(**batch).loss.backward()
    assert calls  # fp32 training: SDPA
    calls.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    assert not calls and torch.isfinite(loss)  # bf16 training on the CPU: written-out attention
