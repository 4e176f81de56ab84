"""The engine: models, preprocessing, training, inference, evaluation and metrics.

Imports from ``data`` only, never from ``study``. Modules: ``registry`` (models by name, no
torch), ``models``, ``preprocess`` (batched resize + normalize + augment on the device),
``config`` (``TrainConfig``), ``runtime`` (device, torchrun, seeds, precision), ``checkpoint``,
``trainer`` (``train_model``), ``inference`` (logits for any batch), ``evaluate``, ``predict``
(image files) and ``metrics``.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "MODELS": "registry",
    "ModelSpec": "registry",
    "build_model": "models",
    "WeightsUnavailableError": "models",
    "Preprocessor": "preprocess",
    "ConfigError": "config",
    "TrainConfig": "config",
    "CheckpointError": "checkpoint",
    "load_checkpoint": "checkpoint",
    "load_run_model": "checkpoint",
    "TrainResult": "trainer",
    "train_model": "trainer",
    "Evaluation": "evaluate",
    "evaluate_model": "evaluate",
    "write_evaluation": "evaluate",
    "predict_files": "predict",
    "binary_metrics": "metrics",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
