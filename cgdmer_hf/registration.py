"""Registration of the CG-DMER classes with the transformers Auto classes (run once on import)."""

from __future__ import annotations

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

from .configuration_cgdmer import CGDMERConfig
from .modeling_cgdmer import CGDMERForECGClassification, CGDMERForPreTraining, CGDMERModel

_done = False


def register() -> None:
    """Register with the Auto classes and mark the classes for `auto_map` so saved folders load with
    `trust_remote_code=True` where the package is not installed."""
    global _done
    if _done:
        return
    AutoConfig.register(CGDMERConfig.model_type, CGDMERConfig, exist_ok=True)
    AutoModel.register(CGDMERConfig, CGDMERModel, exist_ok=True)
    AutoModelForPreTraining.register(CGDMERConfig, CGDMERForPreTraining, exist_ok=True)
    AutoModelForSequenceClassification.register(CGDMERConfig, CGDMERForECGClassification, exist_ok=True)
    CGDMERConfig.register_for_auto_class()
    CGDMERModel.register_for_auto_class("AutoModel")
    CGDMERForPreTraining.register_for_auto_class("AutoModelForPreTraining")
    CGDMERForECGClassification.register_for_auto_class("AutoModelForSequenceClassification")
    # The feature extractor, the processor and the zero-shot pipeline.
    from transformers import AutoFeatureExtractor, AutoProcessor

    from .feature_extraction_cgdmer import CGDMERFeatureExtractor
    from .processing_cgdmer import CGDMERProcessor

    AutoFeatureExtractor.register(CGDMERConfig, CGDMERFeatureExtractor, exist_ok=True)
    AutoProcessor.register(CGDMERConfig, CGDMERProcessor, exist_ok=True)
    CGDMERFeatureExtractor.register_for_auto_class()
    CGDMERProcessor.register_for_auto_class()

    from transformers.pipelines import PIPELINE_REGISTRY

    from .pipeline_cgdmer import ZeroShotECGClassificationPipeline

    PIPELINE_REGISTRY.register_pipeline("zero-shot-ecg-classification",
                                        pipeline_class=ZeroShotECGClassificationPipeline, pt_model=AutoModel)
    _done = True
