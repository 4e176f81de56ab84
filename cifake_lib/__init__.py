"""cifake_lib: telling real photographs from AI-generated images on CIFAKE.

FAKE (AI-generated) = 1 is the positive class everywhere; REAL = 0.

Layers, each importing only the ones before it: ``data`` (sources, decoding, cache, audit,
splits) -> ``engine`` (models, preprocessing, training, inference, evaluation, metrics) ->
``study`` (profiles, notebook set-up, the stages of each notebook, plots) -> ``cli`` and
``report``. ``paths``, ``provenance`` and ``atomic`` are small helpers every layer may use.
"""

from .data.labels import CIFAR10_CATEGORIES, FAKE, REAL
from .data.sources import DataError

__version__ = "0.1.0"

__all__ = ["CIFAR10_CATEGORIES", "FAKE", "REAL", "DataError", "__version__"]
