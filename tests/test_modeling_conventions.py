"""transformers conventions (issue 12): output flags, attention implementations, feature outputs, embedding
accessors, export and compile, dtype, caller-controlled masks, no dead parameters, partial-checkpoint loading.

`CGDMERModelTester` builds a tiny config and inputs for every model class, the way transformers' model testers
do; the tests below run each convention against the classes it applies to."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers.modeling_outputs import BaseModelOutputWithPooling

from cgdmer_hf import CGDMERConfig, CGDMERForECGClassification, CGDMERForPreTraining, CGDMERModel

pytestmark = pytest.mark.usefixtures("one_thread")

ALL_CLASSES = (CGDMERModel, CGDMERForPreTraining, CGDMERForECGClassification)


class CGDMERModelTester:
    """A tiny CG-DMER (2 s ECGs: 12 leads x 8 patches, width 16) and matching inputs for each class."""

    # Export and compile trace the whole graph: one ECG layer keeps them fast.
    one_layer = {"ecg_config": {"num_hidden_layers": 1}}

    batch_size, seq_length, vocab_size = 2, 6, 64
    num_leads, num_patches, num_samples = 12, 8, 200
    ecg_layers, text_layers = 2, 1
    hidden_size = 16

    def get_config(self, **overrides: Any) -> CGDMERConfig:
        h = self.hidden_size
        ecg = dict(duration=2.0, hidden_size=h, num_hidden_layers=self.ecg_layers, intermediate_size=2 * h,
                   decoder_hidden_size=h, decoder_intermediate_size=2 * h)
        text = dict(vocab_size=self.vocab_size, hidden_size=h, num_hidden_layers=self.text_layers,
                    intermediate_size=2 * h, max_position_embeddings=16)
        ecg.update(overrides.pop("ecg_config", {}))
        text.update(overrides.pop("text_config", {}))
        top = {"shared_hidden_size": h, "projection_dim": 8, "num_labels": 3, **overrides}
        return CGDMERConfig.from_preset("tiny", ecg_config=ecg, text_config=text, **top)

    def model(self, model_class: type, seed: int = 0, **overrides: Any) -> torch.nn.Module:
        torch.manual_seed(seed)
        return model_class(self.get_config(**overrides)).eval()

    def ecg_inputs(self, batch: int | None = None, seed: int = 1) -> dict[str, torch.Tensor]:
        """ECGs with an absent lead (V1 of the second ECG) and padding (the last 50 samples of the first)."""
        batch = batch or self.batch_size
        g = torch.Generator().manual_seed(seed)
        lead_mask = torch.ones(batch, self.num_leads)
        ecg_attention_mask = torch.ones(batch, self.num_samples, dtype=torch.long)
        if batch > 1:
            lead_mask[1, 6] = 0
        ecg_attention_mask[0, -50:] = 0
        return dict(ecg_values=torch.randn(batch, self.num_leads, self.num_samples, generator=g), lead_mask=lead_mask,
                    ecg_attention_mask=ecg_attention_mask)

    def text_inputs(self, batch: int | None = None, seed: int = 2) -> dict[str, torch.Tensor]:
        """Reports with padding (the last 2 tokens of the first)."""
        batch = batch or self.batch_size
        ids = torch.randint(5, self.vocab_size, (batch, self.seq_length), generator=torch.Generator().manual_seed(seed))
        attention_mask = torch.ones_like(ids)
        attention_mask[0, -2:] = 0
        return dict(input_ids=ids, attention_mask=attention_mask)

    def inputs_for(self, model: torch.nn.Module, batch: int | None = None) -> dict[str, torch.Tensor]:
        """Forward inputs of `model`'s class: ECGs (+ reports, + a fixed `noise` for pretraining)."""
        inputs = self.ecg_inputs(batch)
        if not isinstance(model, CGDMERForECGClassification):
            inputs.update(self.text_inputs(batch))
        if isinstance(model, CGDMERForPreTraining):
            inputs["noise"] = model.sample_noise(batch or self.batch_size, torch.Generator().manual_seed(3))
        return inputs


@pytest.fixture(scope="module")
def tester() -> CGDMERModelTester:
    return CGDMERModelTester()


def ecg_tower_outputs(out) -> tuple[Any, Any]:
    """Hidden states and attentions of the ECG tower, wherever the class puts them."""
    if isinstance(out, BaseModelOutputWithPooling):
        return out.hidden_states, out.attentions
    if hasattr(out, "ecg_model_output"):
        return out.ecg_model_output.hidden_states, out.ecg_model_output.attentions
    if hasattr(out, "ecg_hidden_states"):
        return out.ecg_hidden_states, out.ecg_attentions
    return out.hidden_states, out.attentions


def main_output(model: torch.nn.Module, out) -> torch.Tensor:
    """The tensor a class is compared on."""
    if isinstance(model, CGDMERModel):
        return out.logits_per_ecg
    return out.loss if isinstance(model, CGDMERForPreTraining) else out.logits


# ---- 1. output flags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_hidden_states_per_tower(tester, model_class):
    model = tester.model(model_class)
    inputs = tester.inputs_for(model)
    out = model(**inputs, output_hidden_states=True)
    hidden, attentions = ecg_tower_outputs(out)
    assert attentions is None and len(hidden) == tester.ecg_layers + 1
    # The pretraining encoder sees the visible tokens only.
    tokens = (tester.num_leads * tester.num_patches if model_class is not CGDMERForPreTraining
              else tester.num_leads * tester.num_patches - model.num_masked_tokens)
    assert all(h.shape == (tester.batch_size, tokens, tester.hidden_size) for h in hidden)
    if model_class is CGDMERModel:
        assert torch.equal(hidden[-1], out.ecg_model_output.last_hidden_state)
        assert len(out.text_model_output.hidden_states) == tester.text_layers + 1
        assert out.text_model_output.hidden_states[0].shape == (tester.batch_size, tester.seq_length, tester.hidden_size)
    if model_class is CGDMERForPreTraining:
        assert len(out.text_hidden_states) == tester.text_layers + 1
    # Off by default, and the config's value is the default of the flag.
    assert ecg_tower_outputs(model(**inputs))[0] is None
    model.config.output_hidden_states = True
    assert len(ecg_tower_outputs(model(**inputs))[0]) == tester.ecg_layers + 1
    assert ecg_tower_outputs(model(**inputs, output_hidden_states=False))[0] is None
    # Asking for hidden states changes no number.
    torch.testing.assert_close(main_output(model, model(**inputs)), main_output(model, out), rtol=0, atol=0)


@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_return_dict_false_gives_tuples(tester, model_class):
    model = tester.model(model_class)
    inputs = tester.inputs_for(model)
    as_dict = model(**inputs, output_hidden_states=True)
    as_tuple = model(**inputs, output_hidden_states=True, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple())
    assert torch.equal(as_tuple[0], as_dict[0])
    if model_class is CGDMERModel:  # the tower outputs become nested tuples, as CLIP's
        assert isinstance(as_tuple[-1], tuple) and torch.equal(as_tuple[-1][0],
                                                               as_dict.text_model_output.last_hidden_state)
    model.config.return_dict = False
    assert isinstance(model(**inputs), tuple)


@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_eager_attention_weights(tester, model_class):
    model = tester.model(model_class, attn_implementation="eager")
    inputs = tester.inputs_for(model)
    out = model(**inputs, output_attentions=True)
    _, attentions = ecg_tower_outputs(out)
    assert len(attentions) == 2 * tester.ecg_layers  # temporal then spatial attention in every divided layer
    for weights in attentions:
        torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights.sum(-1)))
    if model_class is not CGDMERForPreTraining:  # the full grid: grouped weights
        heads = model.config.ecg_config.num_attention_heads
        temporal, spatial = attentions[:2]
        assert temporal.shape == (tester.batch_size, tester.num_leads, heads, tester.num_patches, tester.num_patches)
        assert spatial.shape == (tester.batch_size, tester.num_patches, heads, tester.num_leads, tester.num_leads)
        assert spatial[1, ..., 6].abs().max() == 0  # the absent lead is never attended to
        assert temporal[0, ..., -2:].abs().max() == 0  # nor are the padded patches
    if model_class is CGDMERModel:
        text = out.text_model_output.attentions
        assert len(text) == tester.text_layers and text[0][0, ..., -2:].abs().max() == 0


def test_attention_weights_need_the_eager_implementation(tester):
    model = tester.model(CGDMERModel)
    with pytest.raises(ValueError, match="output_attentions=True needs the eager attention.*set_attn_implementation"):
        model.get_ecg_features(**tester.ecg_inputs(), output_attentions=True)
    model.set_attn_implementation("eager")
    assert len(model.get_ecg_features(**tester.ecg_inputs(), output_attentions=True).attentions) == 4


# ---- 2. attention implementations --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_eager_matches_sdpa(tester, model_class, dtype, tol):
    model = tester.model(model_class).to(dtype)
    inputs = tester.inputs_for(model)
    with torch.no_grad():
        sdpa = model(**inputs)
        model.set_attn_implementation("eager")
        eager = model(**inputs)
    for key in ("ecg_embeds", "text_embeds", "logits", "ecg_reconstruction", "loss"):
        if getattr(sdpa, key, None) is not None:
            torch.testing.assert_close(eager[key].float(), sdpa[key].float(), atol=tol, rtol=tol, msg=key)


@pytest.mark.parametrize("implementation", ["flash_attention_2", "flex_attention", "bogus"])
def test_unsupported_attention_implementations_are_refused(tester, tmp_path, implementation):
    message = f"CG-DMER supports attn_implementation 'eager' and 'sdpa', got '{implementation}'"
    with pytest.raises(ValueError, match=message):
        CGDMERModel(tester.get_config(attn_implementation=implementation))
    model = tester.model(CGDMERModel)
    with pytest.raises(ValueError, match=message):
        model.set_attn_implementation(implementation)
    model.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=message):
        CGDMERModel.from_pretrained(tmp_path, attn_implementation=implementation)
    eager = CGDMERModel.from_pretrained(tmp_path, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager" == eager.config.ecg_config._attn_implementation


# ---- 3. feature methods ------------------------------------------------------------------------------------


def test_feature_methods_return_base_model_output_with_pooling(tester):
    model = tester.model(CGDMERModel, attn_implementation="eager")
    ecg, text = tester.ecg_inputs(), tester.text_inputs()
    out = model(**ecg, **text)
    ecg_features = model.get_ecg_features(**ecg, output_hidden_states=True, output_attentions=True)
    text_features = model.get_text_features(**text)
    assert isinstance(ecg_features, BaseModelOutputWithPooling) and isinstance(text_features,
                                                                               BaseModelOutputWithPooling)
    torch.testing.assert_close(F.normalize(ecg_features.pooler_output, dim=-1), out.ecg_embeds)
    torch.testing.assert_close(F.normalize(text_features.pooler_output, dim=-1), out.text_embeds)
    torch.testing.assert_close(ecg_features.pooler_output, out.ecg_model_output.pooler_output)
    assert ecg_features.last_hidden_state.shape == (tester.batch_size, 12 * 8, tester.hidden_size)
    assert len(ecg_features.hidden_states) == 3 and len(ecg_features.attentions) == 4
    assert text_features.hidden_states is None
    pooled = model.get_text_features(**text, return_dict=False)
    assert isinstance(pooled, tuple) and torch.equal(pooled[1], text_features.pooler_output)
    # The probe feature stays a tensor.
    assert model.get_ecg_representation(**ecg).shape == (tester.batch_size, model.representation_size)


# ---- 4. embedding accessors --------------------------------------------------------------------------------


def test_input_and_output_embeddings(tester, tmp_path):
    model = tester.model(CGDMERForPreTraining)
    assert model.get_input_embeddings() is model.cgdmer.text_model.token_embedding
    assert model.get_output_embeddings() is model.mlm_head.decoder
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight  # untied by default
    new = torch.nn.Embedding(tester.vocab_size, tester.hidden_size, padding_idx=0)
    model.set_input_embeddings(new)
    assert model.cgdmer.text_model.token_embedding is new and model.cgdmer.get_input_embeddings() is new
    tied = tester.model(CGDMERForPreTraining, tie_word_embeddings=True)
    assert tied.get_output_embeddings().weight is tied.get_input_embeddings().weight
    tied.save_pretrained(tmp_path)
    reloaded = CGDMERForPreTraining.from_pretrained(tmp_path)
    assert reloaded.get_output_embeddings().weight is reloaded.get_input_embeddings().weight
    torch.testing.assert_close(reloaded.get_output_embeddings().weight, tied.get_output_embeddings().weight)
    with pytest.raises(ValueError, match="tie_word_embeddings=True needs shared_hidden_size"):
        tester.get_config(tie_word_embeddings=True, shared_hidden_size=32)
    clf = tester.model(CGDMERForECGClassification)
    with pytest.raises(ValueError, match="no report tower"):
        clf.resize_token_embeddings(100)


@pytest.mark.parametrize("tie", [False, True])
def test_resize_token_embeddings_after_adding_tokens(tester, tmp_path, tie):
    from cgdmer_hf.reports import load_default_tokenizer

    tokenizer = load_default_tokenizer()
    torch.manual_seed(0)
    model = CGDMERForPreTraining(tester.get_config(text_config=dict(vocab_size=len(tokenizer)),
                                                   tie_word_embeddings=tie)).eval()
    tokenizer.add_tokens(["<stemi>", "<wpw>"])
    model.resize_token_embeddings(len(tokenizer))
    assert model.config.text_config.vocab_size == len(tokenizer)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert model.get_output_embeddings().weight.shape[0] == len(tokenizer)
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == tie
    ids = tokenizer(["<stemi> sinus rhythm <wpw>"] * 2, return_tensors="pt")["input_ids"]
    assert int(ids.max()) == len(tokenizer) - 1
    labels = ids.clone()
    out = model(**tester.ecg_inputs(), input_ids=ids, mlm_input_ids=ids, mlm_labels=labels)
    assert out.mlm_logits.shape[-1] == len(tokenizer) and torch.isfinite(out.loss)
    model.save_pretrained(tmp_path)
    reloaded = CGDMERForPreTraining.from_pretrained(tmp_path).eval()
    assert reloaded.config.text_config.vocab_size == len(tokenizer)
    torch.testing.assert_close(reloaded.get_input_embeddings().weight, model.get_input_embeddings().weight)
    torch.testing.assert_close(reloaded(**tester.ecg_inputs(), input_ids=ids).text_embeds,
                               model(**tester.ecg_inputs(), input_ids=ids).text_embeds)


# ---- 5. export and compile ---------------------------------------------------------------------------------


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_export_with_a_static_or_dynamic_batch(tester, model_class, dynamic):
    model = tester.model(model_class, **tester.one_layer)
    inputs = tester.inputs_for(model)  # pretraining: with a fixed noise
    batch = torch.export.Dim("batch", min=1, max=64)
    shapes = {k: {0: batch} for k in inputs} if dynamic else None
    program = torch.export.export(model, (), kwargs=inputs, dynamic_shapes=shapes)
    assert "nonzero" not in program.graph_module.code  # fixed-shape token selection
    other = tester.inputs_for(model, batch=3) if dynamic else inputs
    torch.testing.assert_close(main_output(model, program.module()(**other)), main_output(model, model(**other)))


def test_export_pretraining_with_an_explicit_mask(tester):
    model = tester.model(CGDMERForPreTraining, **tester.one_layer)
    inputs = tester.ecg_inputs()
    inputs["ecg_mask"] = model(**inputs).ecg_mask
    program = torch.export.export(model, (), kwargs=inputs)
    torch.testing.assert_close(program.module()(**inputs).loss, model(**inputs).loss)
    # Without noise or a mask an eval-mode model hashes each ECG: not traceable, and it says so.
    del inputs["ecg_mask"]
    with pytest.raises(ValueError, match="pass noise= or ecg_mask="):
        torch.export.export(model, (), kwargs=inputs)


def test_compile_fullgraph(tester):
    """`fullgraph=True` fails on any graph break; the eager backend keeps the test fast (inductor compiles the
    same graph)."""
    torch._dynamo.reset()
    for model_class in ALL_CLASSES:
        model = tester.model(model_class, **tester.one_layer)
        inputs = tester.inputs_for(model)
        compiled = torch.compile(model, fullgraph=True, backend="eager")
        torch.testing.assert_close(main_output(model, compiled(**inputs)), main_output(model, model(**inputs)))
    torch._dynamo.reset()


# ---- 6. dtype ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_half_precision_model_takes_float32_ecgs(tester, model_class, dtype):
    model = tester.model(model_class).to(dtype)
    inputs = tester.inputs_for(model)
    assert inputs["ecg_values"].dtype == torch.float32
    out = model(**inputs)
    assert torch.isfinite(main_output(model, out)).all()
    if model_class is not CGDMERForPreTraining:
        assert main_output(model, out).dtype == dtype


def test_from_pretrained_dtype_and_device_map(tester, tmp_path):
    model = tester.model(CGDMERModel)
    model.save_pretrained(tmp_path)
    half = CGDMERModel.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert half.get_ecg_features(**tester.ecg_inputs()).pooler_output.dtype == torch.bfloat16
    mapped = CGDMERModel.from_pretrained(tmp_path, device_map="cpu").eval()
    torch.testing.assert_close(mapped.get_ecg_representation(**tester.ecg_inputs()),
                               model.get_ecg_representation(**tester.ecg_inputs()))


# ---- 7. masks under the caller's control -------------------------------------------------------------------


def test_noise_or_an_explicit_mask_sets_the_mask(tester):
    model = tester.model(CGDMERForPreTraining)
    ecg = tester.ecg_inputs()
    noise = model.sample_noise(2, torch.Generator().manual_seed(5))
    first = model(**ecg, noise=noise).ecg_mask
    assert torch.equal(model.train()(**ecg, noise=noise).ecg_mask, first)  # noise fixes a training draw too
    assert (first.sum(-1) == model.num_masked_tokens).all()
    assert not torch.equal(model(**ecg, noise=model.sample_noise(2)).ecg_mask, first)
    assert torch.equal(model(**ecg, ecg_mask=first.flip(0)).ecg_mask, first.flip(0))
    with pytest.raises(ValueError, match="Pass ecg_mask or noise, not both"):
        model(**ecg, noise=noise, ecg_mask=first)
    with pytest.raises(ValueError, match=rf"noise must be a float tensor of shape \(2, {model.ecg_noise_size}\)"):
        model(**ecg, noise=noise[:, 1:])


def test_training_mask_is_drawn_from_the_torch_rng_as_sample_noise(tester):
    model = tester.model(CGDMERForPreTraining).train()
    ecg = tester.ecg_inputs()
    torch.manual_seed(11)
    drawn = model(**ecg).ecg_mask
    torch.manual_seed(11)
    assert torch.equal(model(**ecg, noise=model.sample_noise(2)).ecg_mask, drawn)


def test_eval_mask_of_a_sample_depends_on_that_sample_alone(tester):
    model = tester.model(CGDMERForPreTraining)
    ecg = tester.ecg_inputs(batch=3)
    batched = model(**ecg)
    order = [2, 0]
    alone = model(**{k: v[order] for k, v in ecg.items()})
    assert torch.equal(alone.ecg_mask, batched.ecg_mask[order])
    torch.testing.assert_close(alone.ecg_reconstruction, batched.ecg_reconstruction[order])
    assert not torch.equal(batched.ecg_mask[0], batched.ecg_mask[2])  # not one mask for every ECG
    assert torch.equal(model(**ecg).ecg_mask, batched.ecg_mask)


# ---- 8. no dead parameters ---------------------------------------------------------------------------------


def _parameters_without_gradient(model: torch.nn.Module) -> list[str]:
    return [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]


def test_every_classifier_parameter_gets_a_gradient(tester):
    model = tester.model(CGDMERForECGClassification).train()
    assert not [n for n in dict(model.named_parameters()) if "_projection" in n and "patch_projection" not in n]
    model(**tester.ecg_inputs(), labels=torch.ones(2, 3)).loss.backward()
    assert _parameters_without_gradient(model) == []


def test_every_pretraining_parameter_gets_a_gradient_with_reports(tester):
    model = tester.model(CGDMERForPreTraining).train()
    text = tester.text_inputs()
    labels = torch.full_like(text["input_ids"], -100)
    labels[:, 1] = text["input_ids"][:, 1]
    model(**tester.ecg_inputs(), **text, mlm_input_ids=text["input_ids"], mlm_labels=labels).loss.backward()
    assert _parameters_without_gradient(model) == []


# ---- 9. strict loading and partial checkpoints --------------------------------------------------------------


def test_pretraining_checkpoint_loads_into_each_head(tester, tmp_path):
    pretrained = tester.model(CGDMERForPreTraining)
    pretrained.save_pretrained(tmp_path)
    ecg = tester.ecg_inputs()
    expected = pretrained.cgdmer.get_ecg_representation(**ecg)
    for model_class in ALL_CLASSES:
        model, info = model_class.from_pretrained(tmp_path, output_loading_info=True)
        new = {"classifier.weight", "classifier.bias"} if model_class is CGDMERForECGClassification else set()
        assert set(info["missing_keys"]) == new and not info["unexpected_keys"] and not info["mismatched_keys"]
        core = model if isinstance(model, CGDMERModel) else model.cgdmer
        torch.testing.assert_close(core.eval().get_ecg_representation(**ecg), expected)
    # The classifier drops the text tower and every projection: all expected-unused, never an error.
    clf = CGDMERForECGClassification.from_pretrained(tmp_path)
    names = set(clf.state_dict())
    assert not any(n.startswith(("cgdmer.text_", "cgdmer.shared_projection", "ecg_decoder")) for n in names)
    # Only those: a checkpoint that lacks a backbone weight the classifier uses is still an error.
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "model.safetensors")
    del weights["cgdmer.shared_encoder.layer_norm.weight"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing keys: \['cgdmer.shared_encoder.layer_norm.weight'\]"):
        CGDMERForECGClassification.from_pretrained(tmp_path)


def test_strict_false_loads_a_partial_checkpoint(tester, tmp_path):
    tester.model(CGDMERModel).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"missing keys: \['ecg_decoder.*pass strict=False"):
        CGDMERForPreTraining.from_pretrained(tmp_path)
    model, info = CGDMERForPreTraining.from_pretrained(tmp_path, strict=False, output_loading_info=True)
    assert info["missing_keys"] and all(k.startswith(("ecg_decoder.", "mlm_head.")) for k in info["missing_keys"])
    # A classifier checkpoint lacks the text tower: a dual encoder made from it would be half random.
    tester.model(CGDMERForECGClassification).save_pretrained(tmp_path / "clf")
    with pytest.raises(ValueError, match="missing keys"):
        CGDMERModel.from_pretrained(tmp_path / "clf")


def test_ignore_mismatched_sizes_reinitialises_the_head(tester, tmp_path):
    tester.model(CGDMERForECGClassification).save_pretrained(tmp_path)
    # transformers' own error (5.23) or ours: never a silently re-initialised head.
    with pytest.raises((ValueError, RuntimeError), match="mismatched keys|ignore_mismatched_sizes"):
        CGDMERForECGClassification.from_pretrained(tmp_path, num_labels=5)
    model = CGDMERForECGClassification.from_pretrained(tmp_path, num_labels=5, ignore_mismatched_sizes=True)
    assert model.classifier.weight.shape == (5, model.cgdmer.representation_size)
    assert model(**tester.ecg_inputs()).logits.shape == (2, 5)
