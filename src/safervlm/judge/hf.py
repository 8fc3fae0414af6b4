"""Local generative judge (GRM): a transformers vision-language model run in-process, batched.

The same rubrics, parser, cache and counting as the HTTP judge
(:class:`safervlm.judge.model.ModelJudge`); replies come from greedy batched generation with
:class:`safervlm.evaluate.generate.HFGenerator` (left padding, length-sorted batches), one
system prompt per rubric. Replies are cached after each chunk of ``4 * batch_size``
requests, so a killed run loses at most one chunk.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from safervlm.errors import ConfigError
from safervlm.judge.model import CallError, ModelJudge, OnReply, Request
from safervlm.models.generation import HFGenerator


def model_fingerprint(model_path: str | Path) -> str:
    """Short hash of a model folder's config and weight files' names, sizes and mtimes."""
    root = Path(model_path)
    h = hashlib.sha256()
    for path in sorted(root.glob("*")):
        if path.suffix in {".json", ".safetensors", ".bin", ".model", ".txt"} and path.is_file():
            st = path.stat()
            h.update(json.dumps([path.name, st.st_size, st.st_mtime_ns]).encode())
    return h.hexdigest()[:12]


class HFJudge(ModelJudge):
    """Rubric judge backed by a local model folder (Qwen2.5-VL family).

    Args:
        model_path: Local model folder (weights, tokenizer, processor).
        batch_size: Generation batch size.
        max_new_tokens: Reply length cap.
        rubric, rubrics, cache: See :class:`safervlm.judge.model.ModelJudge`.
        verdict_channel: Only ``envelope`` (see :mod:`safervlm.judge.channel`).
    """

    name = "hf"
    version = "2.0"

    def __init__(
        self,
        model_path: str,
        batch_size: int = 8,
        max_new_tokens: int = 256,
        rubric: str = "saferv",
        rubrics: dict[str, str] | None = None,
        cache: str | None = None,
        verdict_channel: str = "envelope",
    ) -> None:
        if verdict_channel != "envelope":
            raise ValueError(
                "the local hf judge reads verdicts only through verdict_channel: envelope "
                "(it has no constrained decoding for structured output)"
            )
        if not Path(model_path).is_dir():
            raise ConfigError(f"{model_path}: local judge model folder not found")
        if batch_size < 1 or max_new_tokens < 1:
            raise ValueError("batch_size and max_new_tokens must be >= 1")
        super().__init__(rubric=rubric, rubrics=rubrics, cache=cache)
        self.model_path = str(model_path)
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self._fingerprint = model_fingerprint(model_path)
        self._generators: dict[str, Any] = {}

    @property
    def judge_id(self) -> str:
        """``hf:<folder name>:<fingerprint>``."""
        return f"hf:{Path(self.model_path).name}:{self._fingerprint}"

    def _generator(self, system: str) -> Any:
        if not self._generators:
            self._generators[system] = HFGenerator(self.model_path, system_prompt=system)
        elif system not in self._generators:  # share the loaded weights across system prompts
            first = next(iter(self._generators.values()))
            gen = HFGenerator.__new__(HFGenerator)
            gen.__dict__.update(first.__dict__, system_prompt=system)
            self._generators[system] = gen
        return self._generators[system]

    def _complete(self, requests: list[Request], on_reply: OnReply) -> list[str | CallError]:
        replies: list[str | CallError] = [CallError("not generated")] * len(requests)
        by_system: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            by_system.setdefault(r.system, []).append(i)
        chunk = 4 * self.batch_size
        for system, idx in by_system.items():
            gen = self._generator(system)
            for start in range(0, len(idx), chunk):
                part = idx[start : start + chunk]
                texts = gen.generate(
                    [requests[i].prompt for i in part],
                    [requests[i].image for i in part],
                    max_new_tokens=self.max_new_tokens,
                    batch_size=self.batch_size,
                )
                self.stats["calls"] += len(part)
                for i, out in zip(part, texts, strict=True):
                    replies[i] = out[0]
                    on_reply(requests[i], out[0])
        return replies
