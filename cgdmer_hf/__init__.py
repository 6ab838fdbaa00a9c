"""cgdmer_hf: CG-DMER multimodal ECG-report representation learning as Hugging Face classes.

`import cgdmer_hf` registers the config, models, feature extractor, processor and the
`zero-shot-ecg-classification` pipeline with the transformers Auto classes.
"""

from .configuration_cgdmer import STANDARD_LEADS, CGDMERConfig, CGDMEREcgConfig, CGDMERTextConfig
from .modeling_cgdmer import (
    CGDMERForECGClassification,
    CGDMERForPreTraining,
    CGDMERModel,
    CGDMERPreTrainedModel,
)
from .feature_extraction_cgdmer import CGDMERFeatureExtractor
from .processing_cgdmer import CGDMERProcessor
from .pipeline_cgdmer import ECGFeatureExtractionPipeline, ZeroShotECGClassificationPipeline
from .prompts import load_prompt_set
from .registration import register

register()

__version__ = "0.1.0"
__all__ = [
    "STANDARD_LEADS",
    "CGDMERConfig",
    "CGDMEREcgConfig",
    "CGDMERTextConfig",
    "CGDMERModel",
    "CGDMERForPreTraining",
    "CGDMERForECGClassification",
    "CGDMERPreTrainedModel",
    "CGDMERFeatureExtractor",
    "CGDMERProcessor",
    "ZeroShotECGClassificationPipeline",
    "ECGFeatureExtractionPipeline",
    "load_prompt_set",
]
