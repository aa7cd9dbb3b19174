"""safes-framework: differentially private and fairer synthetic data (SAFES)."""

from .errors import SafesError
from .schema import Categorical, Continuous, Integer, Schema

__version__ = "0.1.0"

__all__ = ["Categorical", "Continuous", "Integer", "SafesError", "Schema", "__version__"]
