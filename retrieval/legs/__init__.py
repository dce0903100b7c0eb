"""Retrieval legs behind one protocol (base.Leg): dense (encoder + vector store) and BM25 (analyzer +
lexical engine). A new leg is a class registered with `register_leg`; nothing else changes."""

from .base import BuildOptions, Leg, LoadOptions, Ranking, RowOrder, leg_names, leg_type, register_leg

__all__ = ["BuildOptions", "Leg", "LoadOptions", "Ranking", "RowOrder", "leg_names", "leg_type", "register_leg"]
