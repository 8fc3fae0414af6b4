"""Curation of the training pool: decontamination and quality–instability selection."""

from safervlm.curate.decontaminate import decontaminate, image_sha256, normalise_question
from safervlm.curate.qi import datasheet, qi_scores, qi_select

__all__ = ["datasheet", "decontaminate", "image_sha256", "normalise_question", "qi_scores", "qi_select"]
