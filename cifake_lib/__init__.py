"""cifake_lib: telling real photographs from AI-generated images on CIFAKE.

FAKE (AI-generated) = 1 is the positive class everywhere; REAL = 0.
"""

from .labels import CIFAR10_CATEGORIES, FAKE, REAL
from .sources import DataError

__version__ = "0.1.0"

__all__ = ["CIFAR10_CATEGORIES", "FAKE", "REAL", "DataError", "__version__"]
