"""The ECG tower's spatial and temporal paths: divided attention (its groups, its fast full-grid path), decoder
slot pooling, explicit masks, position init, the new config fields and loading configs saved without them."""

import json

import pytest
import torch

from cgdmer_hf import CGDMERConfig, CGDMERForPreTraining, CGDMERModel
from cgdmer_hf.configuration_cgdmer import LEGACY_DEFAULTS
from cgdmer_hf.modeling_cgdmer import CGDMEREncoder, TokenGrid, _AttentionMasks

LEADS, PATCHES = 12, 40


def tiny(**ecg) -> CGDMERConfig:
    return CGDMERConfig.from_preset("tiny", ecg_config=ecg)


def encoder(divided: bool = True) -> CGDMEREncoder:
    torch.manual_seed(0)
    return CGDMEREncoder(16, 2, 2, 32, divided=divided).eval()


def test_divided_attention_stays_within_its_groups():
    enc = encoder()
    layer = enc.layers[0]
    grid = TokenGrid.of(None, 1, LEADS, PATCHES, torch.device("cpu"))
    x = torch.randn(1, LEADS * PATCHES, 16)
    changed = x.clone().view(1, LEADS, PATCHES, 16)
    changed[0, 5, 7] += 10.0  # lead 5, time slot 7
    changed = changed.view(1, -1, 16)
    for kind, same_group in (("temporal", lambda lead, t: lead == 5), ("spatial", lambda lead, t: t == 7)):
        attention = layer.attention if kind == "temporal" else layer.spatial_attention
        masks = _AttentionMasks(torch.ones(1, LEADS * PATCHES, dtype=torch.bool), grid)
        diff = (masks.attend(attention, changed, kind) - masks.attend(attention, x, kind)).abs().sum(-1)
        diff = diff.view(LEADS, PATCHES)
        for lead, t in ((5, 30), (2, 7), (2, 30)):
            assert (diff[lead, t] > 1e-6) == same_group(lead, t), (kind, lead, t)


def test_full_grid_fast_path_matches_the_masked_path():
    enc = encoder()
    valid = torch.ones(2, LEADS * PATCHES, dtype=torch.bool)
    valid.view(2, LEADS, PATCHES)[0, 3] = False  # an absent lead
    valid.view(2, LEADS, PATCHES)[1, :, 30:] = False  # padding at the end
    x = torch.randn(2, LEADS * PATCHES, 16)
    full = TokenGrid.of(None, 2, LEADS, PATCHES, x.device)
    listed = TokenGrid(full.lead_ids, full.time_ids, LEADS, PATCHES, full=False)
    with torch.no_grad():
        fast, masked = enc(x, valid, full), enc(x, valid, listed)
    assert torch.allclose(fast[valid], masked[valid], atol=1e-5)


def test_divided_encoder_needs_a_grid():
    with pytest.raises(ValueError, match="divided attention needs the lead and time position"):
        encoder()(torch.randn(1, 4, 16), None)


def test_decoder_slot_means_are_means_over_visible_leads():
    model = CGDMERForPreTraining(tiny(decoder_slot_pooling=True))
    decoder = model.ecg_decoder
    visible = torch.randn(1, 3, 32)
    ids_keep = torch.tensor([[0 * PATCHES + 4, 2 * PATCHES + 4, 5 * PATCHES + 9]])  # two at slot 4, one at 9
    valid = torch.ones(1, LEADS * PATCHES, dtype=torch.bool)
    means = decoder.slot_means(visible, ids_keep, valid)
    assert torch.allclose(means[0, 4], visible[0, :2].mean(0)) and torch.allclose(means[0, 9], visible[0, 2])
    assert means[0, 0].abs().sum() == 0
    valid[0, 2 * PATCHES + 4] = False  # an invalid visible token is not pooled
    assert torch.allclose(decoder.slot_means(visible, ids_keep, valid)[0, 4], visible[0, 0])


def test_slot_pooling_routes_same_time_information_to_masked_tokens():
    """With pooling (and no decoder layers), a masked token's reconstruction depends on the visible tokens of
    its time slot and not on those of other slots."""
    torch.manual_seed(0)
    cfg = tiny(decoder_num_hidden_layers=0, decoder_attention="joint", decoder_slot_pooling=True)
    decoder = CGDMERForPreTraining(cfg).ecg_decoder.eval()
    ids_keep = torch.tensor([[0 * PATCHES + 4, 1 * PATCHES + 9]])
    valid = torch.ones(1, LEADS * PATCHES, dtype=torch.bool)
    visible = torch.randn(1, 2, cfg.shared_hidden_size)
    moved = visible.clone()
    moved[0, 0] += 5.0
    with torch.no_grad():
        diff = (decoder(moved, ids_keep, valid) - decoder(visible, ids_keep, valid)).abs().sum(-1)[0]
    assert diff[7 * PATCHES + 4] > 1e-3  # masked, same slot, other lead
    assert diff[7 * PATCHES + 9] < 1e-6  # masked, other slot


@pytest.mark.parametrize("fields", [dict(encoder_attention="divided", decoder_attention="divided",
                                         decoder_slot_pooling=True),
                                    dict(encoder_attention="joint", decoder_attention="joint",
                                         decoder_slot_pooling=False, position_init_std=0.5)])
def test_every_design_trains_and_round_trips(tmp_path, fields):
    torch.manual_seed(0)
    model = CGDMERForPreTraining(tiny(**fields))
    ecg = torch.randn(2, LEADS, 1000)
    first = model(ecg).ecg_loss
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(3):
        loss = model(ecg).ecg_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert torch.isfinite(first) and model(ecg).ecg_loss < first
    model.save_pretrained(tmp_path)
    loaded = CGDMERForPreTraining.from_pretrained(tmp_path).eval()
    for name, value in fields.items():
        assert getattr(loaded.config.ecg_config, name) == value
    model.eval()
    assert torch.equal(loaded(ecg).ecg_loss, model(ecg).ecg_loss)


def test_new_configs_default_to_the_spatial_temporal_design():
    ecg = CGDMERConfig().ecg_config
    assert (ecg.encoder_attention, ecg.decoder_attention, ecg.decoder_slot_pooling) == ("divided", "divided", False)
    lead_agnostic = tiny(token_mode="all_leads").ecg_config
    assert lead_agnostic.encoder_attention == "joint" and lead_agnostic.decoder_attention == "joint"


def test_position_init_std_sets_the_embedding_scale():
    wide = CGDMERModel(tiny(position_init_std=0.5)).ecg_model.embeddings.positions
    narrow = CGDMERModel(tiny()).ecg_model.embeddings.positions
    assert 0.4 < wide.time_embedding.weight.std() < 0.6
    assert narrow.time_embedding.weight.std() < 0.05


@pytest.mark.parametrize("fields, message", [
    (dict(token_mode="all_leads", encoder_attention="divided"), "needs token_mode='lead_patch'"),
    (dict(decoder_attention="axial"), "decoder_attention must be one of"),
    (dict(position_init_std=0.0), "position_init_std must be positive"),
])
def test_bad_design_fields_raise(fields, message):
    with pytest.raises(ValueError, match=message):
        tiny(**fields)


def test_config_saved_without_the_new_fields_loads_the_old_architecture(tmp_path):
    """A v0.1.0 checkpoint (its config has no attention/pooling fields) still loads strictly, as joint attention
    without slot pooling, and computes what it computed."""
    torch.manual_seed(0)
    old = CGDMERForPreTraining(tiny(**LEGACY_DEFAULTS)).eval()
    old.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for name in LEGACY_DEFAULTS:
        del saved["ecg_config"][name]
    (tmp_path / "config.json").write_text(json.dumps(saved))
    loaded = CGDMERForPreTraining.from_pretrained(tmp_path).eval()  # strict: raises on any key mismatch
    assert {name: getattr(loaded.config.ecg_config, name) for name in LEGACY_DEFAULTS} == LEGACY_DEFAULTS
    ecg = torch.randn(2, LEADS, 1000)
    assert torch.equal(loaded(ecg).ecg_loss, old(ecg).ecg_loss)


def test_explicit_ecg_mask_is_used_and_checked():
    torch.manual_seed(0)
    model = CGDMERForPreTraining(tiny()).eval()
    ecg = torch.randn(2, LEADS, 1000)
    mask = torch.zeros(2, LEADS, PATCHES, dtype=torch.bool)
    mask[:, 2:6] = True  # the limb leads III, aVR, aVL, aVF
    out = model(ecg, ecg_mask=mask.view(2, -1))
    assert torch.equal(out.ecg_mask, mask.view(2, -1))
    uneven = mask.clone()
    uneven[0, 8, 0] = True
    with pytest.raises(ValueError, match="same number of tokens in every row"):
        model(ecg, ecg_mask=uneven.view(2, -1))
    with pytest.raises(ValueError, match=r"ecg_mask must be a bool tensor of shape \(2, 480\)"):
        model(ecg, ecg_mask=mask)
    with pytest.raises(ValueError, match="masks every token"):
        model(ecg, ecg_mask=torch.ones(2, LEADS * PATCHES, dtype=torch.bool))
