"""Exported policies: the SavedModel, loading it, playing and recording it."""
