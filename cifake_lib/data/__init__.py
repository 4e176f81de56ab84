"""The data layer: find CIFAKE (folder or zip), decode it once, audit it, split it.

Imports nothing from ``engine`` or ``study``. Modules: ``labels`` (FAKE = 1), ``sources`` (the
Kaggle layout in a folder or zip), ``decode`` (bytes -> 3 x S x S uint8), ``cache`` (the on-disk
decode cache), ``dataset`` (``load_cifake``), ``audit``, ``splits``, ``synth``, ``download``.
"""

from .._lazy import lazy_exports

_EXPORTS = {
    "CifakeData": "dataset",
    "CorruptDataError": "dataset",
    "CorruptFilesWarning": "dataset",
    "LoadReport": "dataset",
    "load_cifake": "dataset",
    "CLASS_NAMES": "labels",
    "FAKE": "labels",
    "REAL": "labels",
    "CIFAR10_CATEGORIES": "labels",
    "DataError": "sources",
    "open_source": "sources",
    "audit": "audit",
    "format_audit": "audit",
    "ManifestError": "splits",
    "Splits": "splits",
    "load_manifest": "splits",
    "make_splits": "splits",
    "save_manifest": "splits",
    "make_synthetic_cifake": "synth",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
