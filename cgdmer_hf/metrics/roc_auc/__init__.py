"""ROC-AUC metric module; `evaluate.load(<this folder>)` loads `roc_auc.py`."""
