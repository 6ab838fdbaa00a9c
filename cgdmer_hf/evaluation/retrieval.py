"""ECG <-> report retrieval: recall@k of ECG -> report and report -> ECG over the (ECG, report) pairs of a split.

Reports are cleaned with `clean_report` as the pretraining reports were; identical cleaned reports are one
candidate, and an ECG's own report is its positive (ECG -> report); a report's positives are all ECGs that have it
(report -> ECG: a hit when any of them is among the top k). Similarity is the cosine of the shared embeddings
(`CGDMERModel.retrieve`), as `ZeroShotECGClassificationPipeline.retrieve_reports` / `retrieve_ecgs` rank them.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..data import eval_mode
from ..reports import clean_report_or_empty
from .embeddings import FeatureCache, column

DEFAULT_KS = (1, 5, 10)


def recall_at_k(similarity: np.ndarray, positives: Sequence[Sequence[int]], ks: Sequence[int] = DEFAULT_KS
                ) -> dict[str, float]:
    """`{"R@k": share of queries with a positive among their k most similar candidates}` of a `(queries,
    candidates)` similarity matrix; `positives[i]` holds the candidate indices that are right for query i."""
    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2 or len(positives) != len(similarity) or not len(similarity):
        raise ValueError(f"similarity {similarity.shape} must be (queries, candidates) with one positives list per "
                         f"query ({len(positives)} given)")
    # rank of the best positive: how many candidates score strictly higher
    best = np.array([similarity[i, list(p)].max() for i, p in enumerate(positives)])
    rank = (similarity > best[:, None]).sum(1)
    return {f"R@{k}": float((rank < k).mean()) for k in ks}


def report_pairs(dataset) -> tuple[list[str], np.ndarray]:
    """The distinct cleaned reports of a split and, per record, the index of its report among them; records
    without a report text get -1."""
    if "report" not in dataset.column_names:
        raise ValueError("Retrieval needs a 'report' column (prepare the data with its reports)")
    reports: dict[str, int] = {}
    index = []
    for text in dataset["report"]:
        cleaned = clean_report_or_empty(text)
        index.append(reports.setdefault(cleaned, len(reports)) if cleaned else -1)
    return list(reports), np.asarray(index, dtype=np.int64)


def retrieval_recall(model, tokenizer, dataset, features: Optional[FeatureCache] = None, batch_size: int = 64,
                     ks: Sequence[int] = DEFAULT_KS) -> dict[str, Any]:
    """Recall@k of ECG -> report and report -> ECG of `model` over a split's (ECG, report) pairs."""
    features = features if features is not None else FeatureCache()
    reports, index = report_pairs(dataset)
    keep = np.flatnonzero(index >= 0)
    if not len(keep):
        raise ValueError("The split has no report text to retrieve")
    core = model.base_model
    ecg = features.get(core, dataset, "shared", batch_size, normalize=True, name="retrieval")[keep]
    with eval_mode(core):
        text = core.zero_shot_report_embeddings(reports, tokenizer, batch_size).cpu().numpy()
    similarity = ecg @ text.T
    index = index[keep]
    ecgs_of = [np.flatnonzero(index == r) for r in range(len(reports))]
    return {"ecg_to_report": recall_at_k(similarity, [[i] for i in index], ks),
            "report_to_ecg": recall_at_k(similarity.T, ecgs_of, ks),
            "num_ecgs": int(len(keep)), "num_reports": len(reports)}


def retrieval_rows(model, tokenizer, dataset, features: Optional[FeatureCache] = None, random_baseline: bool = True,
                   random_seed: int = 0, batch_size: int = 64) -> list[dict[str, Any]]:
    """`retrieval_recall` rows of the model and (with `random_baseline`) of a random-init model of its config."""
    features = features if features is not None else FeatureCache()
    encoders = {"pretrained": model.base_model}
    if random_baseline:
        encoders["random_init"] = features.random_init_like(model.base_model, random_seed)
    return [{"task": "retrieval", "encoder": name, **retrieval_recall(m, tokenizer, dataset, features, batch_size)}
            for name, m in encoders.items()]


__all__ = ["DEFAULT_KS", "recall_at_k", "report_pairs", "retrieval_recall", "retrieval_rows"]
