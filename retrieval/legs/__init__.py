"""Retrieval legs behind one protocol (base.Leg): dense (encoder + vector store) and BM25 (analyzer +
lexical engine). A new leg is a class registered with `register_leg` (LegBase gives the protocol's defaults);
nothing else changes. The built-in legs register here, after the protocol they import."""

from . import dense, lexical  # noqa: F401  (importing them registers the built-in legs)
from .base import BuildOptions, Leg, LegBase, LoadOptions, Ranking, RowOrder
from .base import default_legs, leg_names, leg_type, register_leg

__all__ = ["BuildOptions", "Leg", "LegBase", "LoadOptions", "Ranking", "RowOrder", "default_legs", "leg_names",
           "leg_type", "register_leg"]
