"""QI-Safe curation: the training pool, decontamination, QI scoring and selection, datasheet."""

from safervlm.config import DecontaminateParams, PoolParams, QIScoreParams, QISelectParams, SourceSpec
from safervlm.curate.datasheet import build_datasheet, plot_datasheet, render_markdown
from safervlm.curate.decontaminate import REASONS, decontaminate
from safervlm.curate.near_dup import normalise_question
from safervlm.curate.pool import build_pool, map_category, parse_sources
from safervlm.curate.qi import allocate, qi_select
from safervlm.curate.scoring import answers_frame, qi_scores, sample_answers, score_answers

__all__ = [
    "REASONS",
    "DecontaminateParams",
    "PoolParams",
    "QIScoreParams",
    "QISelectParams",
    "SourceSpec",
    "allocate",
    "answers_frame",
    "build_datasheet",
    "build_pool",
    "decontaminate",
    "map_category",
    "normalise_question",
    "parse_sources",
    "plot_datasheet",
    "qi_scores",
    "qi_select",
    "render_markdown",
    "sample_answers",
    "score_answers",
]
