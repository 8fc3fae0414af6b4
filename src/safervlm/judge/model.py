"""Shared machinery of model-based judges: rubric choice, cache, parsing, counting.

A subclass supplies ``judge_id`` (what the cache keys on) and :meth:`ModelJudge._complete`
(turn prompts into replies: an HTTP endpoint, a local model). Everything else is here:

* the rubric per record: ``rubrics[benchmark]`` if set, else ``rubric``; ``rubrics:
  official`` takes each benchmark's official-protocol rubric from its module
  (:data:`safervlm.benchmarks.OFFICIAL_RUBRICS`);
* rubrics with ``needs_model=False`` (keyword protocols) are evaluated locally;
* a fresh random tag per request (:mod:`safervlm.judge.channel`): it marks the prompt's
  delimiters and, on the ``envelope`` channel, the only place a verdict is read from;
* cache lookups before any call (the key is built with a placeholder tag, the real tag is
  stored with the reply), and a cache write per reply as it arrives;
* identical requests in one batch are sent once;
* reading the verdict through the judge's channel — the judged text is never consulted; on the
  envelope channel the verdict is the one the rubric can score among the tagged spans — then
  the rubric's scoring; a reply without a usable verdict is *unscored* with the reason;
  no reply at all (retry budget spent, fatal HTTP status) is a judge *error*.

``stats`` counts calls, cache hits/misses, retries and outcomes of the last ``judge`` call.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from safervlm.benchmarks.catalog import OFFICIAL_RUBRICS
from safervlm.judge.base import Judge, Judgment
from safervlm.judge.cache import JudgeCache, cache_key, image_digest
from safervlm.judge.channel import KEY_TAG, check_channel, new_tag, read_verdict
from safervlm.judge.rubrics import Rubric, get_rubric, score_verdict, verdict_fits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """One judge call: the rubric's system and user prompt, an optional image, the request's tag."""

    rubric: Rubric
    prompt: str
    image: bytes | None
    key: str
    tag: str
    channel: str

    @property
    def system(self) -> str:
        """The rubric's system message."""
        return self.rubric.system


@dataclass(frozen=True)
class CallError:
    """No reply for a request; ``reason`` says why (never contains credentials)."""

    reason: str


OnReply = Callable[[Request, str], None]


def _text(record: Mapping[str, Any], key: str) -> str:
    value = record.get(key)
    return value if isinstance(value, str) else ""


class ModelJudge(Judge):
    """Base class of judges that ask a model (see the module docstring)."""

    def __init__(
        self,
        rubric: str = "saferv",
        rubrics: Mapping[str, str] | str | None = None,
        cache: str | None = None,
        verdict_channel: str = "envelope",
    ) -> None:
        self.verdict_channel = check_channel(verdict_channel)
        self.default_rubric = get_rubric(rubric)
        if rubrics == "official":
            rubrics = OFFICIAL_RUBRICS
        if rubrics is not None and not isinstance(rubrics, Mapping):
            raise ValueError(
                f"rubrics must map benchmark names to rubric names (or be 'official'), got {rubrics!r}"
            )
        self.rubrics = {str(b): get_rubric(r) for b, r in (rubrics or {}).items()}
        self.cache: JudgeCache | None = None
        if cache:
            self.use_cache(cache)
        self.stats: dict[str, int] = {}

    @property
    @abc.abstractmethod
    def judge_id(self) -> str:
        """Identity of the judge model for the cache key (e.g. ``openai:gpt-4o-mini``)."""

    @abc.abstractmethod
    def _complete(self, requests: list[Request], on_reply: OnReply) -> list[str | CallError]:
        """Return one reply (or :class:`CallError`) per request, calling ``on_reply`` per reply."""

    def use_cache(self, path: str) -> None:
        """Cache replies in the SQLite file at ``path``."""
        self.cache = JudgeCache(path)

    def rubric_for(self, record: Mapping[str, Any]) -> Rubric:
        """The rubric for ``record``'s benchmark."""
        return self.rubrics.get(_text(record, "benchmark"), self.default_rubric)

    def _store(self, request: Request, reply: str) -> None:
        if self.cache is not None:
            self.cache.put(request.key, self.judge_id, request.rubric.id, reply, request.tag)

    def judge(self, records: list[dict[str, Any]]) -> list[Judgment]:
        """Judge response records (see :class:`safervlm.judge.base.Judge`)."""
        cache_hits0 = self.cache.hits if self.cache else 0
        cache_misses0 = self.cache.misses if self.cache else 0
        self.stats = {"calls": 0, "retries": 0}
        out: list[Judgment | None] = [None] * len(records)
        pending: dict[str, list[int]] = {}
        requests: dict[str, Request] = {}
        for i, rec in enumerate(records):
            rubric = self.rubric_for(rec)
            if not rubric.needs_model:
                out[i] = self._local(rubric, rec)
                continue
            image = rec.get("image")
            image = bytes(image) if isinstance(image, bytes | bytearray | memoryview) and image else None
            channel = self.verdict_channel
            key = cache_key(
                self.judge_id,
                f"{rubric.id}/{channel}",
                rubric.system + "\n\n" + rubric.prompt(rec, KEY_TAG, channel),
                image_digest(image),
                _text(rec, "response"),
            )
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                cached_reply, cached_tag = cached
                prompt = rubric.prompt(rec, cached_tag, channel)
                out[i] = self._parse(rec, rubric, prompt, cached_reply, cached_tag, channel)
                continue
            pending.setdefault(key, []).append(i)
            if key not in requests:
                tag = new_tag()
                requests[key] = Request(rubric, rubric.prompt(rec, tag, channel), image, key, tag, channel)
        if requests:
            order = list(requests)
            replies = self._complete([requests[k] for k in order], self._store)
            for key, reply in zip(order, replies, strict=True):
                req = requests[key]
                for i in pending[key]:
                    if isinstance(reply, CallError):
                        out[i] = Judgment.failed(req.prompt, reply.reason, rubric=req.rubric.id)
                    else:
                        out[i] = self._parse(records[i], req.rubric, req.prompt, reply, req.tag, req.channel)
        judgments = [j for j in out if j is not None]
        assert len(judgments) == len(records)
        self.stats.update(
            cache_hits=(self.cache.hits - cache_hits0) if self.cache else 0,
            cache_misses=(self.cache.misses - cache_misses0) if self.cache else len(requests),
            unique_requests=len(requests),
            n_scored=sum(j.status == "scored" for j in judgments),
            n_unscored=sum(j.status == "unscored" for j in judgments),
            n_error=sum(j.status == "error" for j in judgments),
        )
        logger.info("judge %s: %s", self.judge_id, self.stats)
        return judgments

    @staticmethod
    def _local(rubric: Rubric, record: Mapping[str, Any]) -> Judgment:
        assert rubric.local is not None
        res = rubric.local(record)
        reason = res.reason or ("" if res.scores else f"{rubric.name} gives the official label only")
        return Judgment(
            "",
            "",
            scores=res.scores,
            harm=res.harm,
            official_label=res.official_label,
            unscored_reason=reason,
            rubric=rubric.id,
        )

    @staticmethod
    def _parse(
        record: Mapping[str, Any], rubric: Rubric, prompt: str, reply: str, tag: str, channel: str
    ) -> Judgment:
        verdict = read_verdict(reply, channel, tag, lambda v: verdict_fits(rubric, v, record))
        if isinstance(verdict, str):
            return Judgment(prompt, reply, unscored_reason=verdict, rubric=rubric.id)
        res = score_verdict(rubric, verdict.data, record, strict=channel == "structured")
        if res.reason and not res.scores:
            return Judgment(
                prompt, reply, unscored_reason=res.reason, official_label=res.official_label, rubric=rubric.id
            )
        return Judgment(
            prompt,
            reply,
            scores=res.scores,
            harm=res.harm,
            official_label=res.official_label,
            unscored_reason=res.reason,
            rubric=rubric.id,
        )
