"""SaFeR-VLM's safety-aware rollout (reflect-and-correct) as a TRL ``rollout_func``.

For each group of ``num_generations`` rows with the same prompt ``x`` (TRL's sampler puts
them next to each other; :class:`safervlm.config.GRPOParams` (its validator) makes every group sit in
one process's batch):

1. the policy samples a completion ``y`` for each sampling row (TRL's own generation path,
   so HF ``generate`` or vLLM, whichever the trainer uses);
2. the reward judge scores ``y``; ``y`` is *unsafe* when its ``safety_score`` is below
   ``safety_threshold`` (an unscored sample is never called unsafe);
3. for each unsafe ``y`` the policy writes a critique ``c`` from ``x``, ``y`` and
   ``reflection_template`` (at most ``reflection_max_tokens`` tokens), then a correction
   ``y'`` from the prompt rewritten by ``correction_template`` (question + critique);
4. ``y'`` enters the group with the *original* prompt ``x``: ``replace`` puts it in the
   unsafe sample's row; ``add`` keeps ``y`` and puts ``y'`` in one of the group's last
   ``correction_slots`` rows (those rows are not sampled; a slot left empty is a
   one-token padding row with loss mask 0 and no reward, so it is out of the group's
   mean/std and gets advantage 0).

TRL then scores every row with the reward functions and computes group advantages as
usual. Because the row's prompt ids are those of ``x``, every log-probability TRL computes
for ``y'`` (policy, old policy, reference) is ``log pi(y' | x)``: the corrected trajectory is
trained as a sample of the old policy under ``x``. The behaviour-policy mismatch
``pi(y'|x) / pi(y'|x, c)`` is not applied (weight 1); under vLLM's importance-sampling
correction the sampling log-probs of ``y'`` are NaN, which TRL turns into a ratio of 1.

Per step the trainer logs ``rollout/unsafe_rate`` (unsafe share of sampled rows),
``rollout/sample_safety`` (mean safety score of the sampled rows, i.e. of the policy
itself), ``rollout/harmful_sample_safety`` (the same over the rows whose prompt should be
refused: benign prompts' samples are always safe, so this is the one a batch's mix of
prompts does not move), ``rollout/corrected`` (corrections made), ``rollout/correction_success``
(share of corrections judged safe), ``rollout/uncorrected`` (unsafe samples left
without a free slot in ``add`` mode) and the wall time of each phase: ``rollout/generate_s``
(sampling), ``rollout/judge_s``, ``rollout/reflect_s`` (critiques), ``rollout/correct_s``
(corrections) — where a step's extra time over plain GRPO goes.

With ``critique_and_correction: one_continuation`` steps 3's critique and correction are one
``generate`` call (:mod:`safervlm.train.continuation`; timed as ``rollout/continuation_s``):
the correction continues the critique's conversation instead of starting from
``correction_template``'s prompt. All unsafe rows of the generation batch are critiqued and
corrected together, in one batch per pass.

With parameters sharded over processes (ZeRO-3, FSDP) each pass gathers them collectively, so
a process whose batch has no unsafe row runs the passes on a throwaway row when another
process corrects (:func:`_corrections_elsewhere`); one process or DDP never does.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOTrainer

from safervlm.config import GRPOParams
from safervlm.judge import Judge, Judgment
from safervlm.models.generation import compile_config
from safervlm.rewards.structured import build_records
from safervlm.train.continuation import generate_continuations
from safervlm.train.strategy import StrategyTrainer

log = logging.getLogger(__name__)

SAMPLE, CORRECTED, PAD = "sample", "corrected", "pad"


class SafetyAwareGRPOTrainer(StrategyTrainer, GRPOTrainer):
    """``GRPOTrainer`` that lets the rollout function see the batch's dataset rows (and sets up
    the configured strategy, FSDP on CPU too: :class:`~safervlm.train.strategy.StrategyTrainer`).

    TRL hands ``rollout_func`` only the prompts; the judge also needs the ground-truth
    columns (``should_refuse``, ``image_objects`` …), so they are kept for the call.
    """

    current_inputs: list[dict[str, Any]] = []

    def __init__(self, *args: Any, compile_generation: bool = False, **kwargs: Any) -> None:
        """``compile_generation`` (``grpo.compile``): undo TRL's ``disable_compile`` so HF
        ``generate`` compiles its decoding forward (with ``cache_implementation: static``)."""
        super().__init__(*args, **kwargs)
        if compile_generation:
            config = compile_config(self.generation_config.cache_implementation)
            self.generation_config.disable_compile = False
            self.generation_config.compile_config = config

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        """Load a full-model checkpoint through ``from_pretrained``.

        transformers' default reads the safetensors keys as saved; for Qwen2.5-VL they are
        in the legacy layout (``model.layers.*``), so it would load nothing and only warn.
        Adapters (peft), DeepSpeed and FSDP checkpoints keep the default path.
        """
        model = self.model if model is None else model
        if hasattr(model, "peft_config") or self.is_deepspeed_enabled or self.is_fsdp_enabled:
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        loaded = type(model).from_pretrained(resume_from_checkpoint, dtype=next(model.parameters()).dtype)
        model.load_state_dict(loaded.state_dict(), strict=True)
        log.info("loaded model weights from %s", resume_from_checkpoint)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        self.current_inputs = inputs
        try:
            return super()._generate_and_score_completions(inputs)
        finally:
            self.current_inputs = []


def _user_text(prompt: list[dict[str, Any]]) -> str:
    """Text of the last user message of a conversational prompt."""
    for msg in reversed(prompt):
        if msg.get("role") == "user":
            content = msg["content"]
            if isinstance(content, str):
                return content
            return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def _with_user_text(prompt: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """A copy of ``prompt`` whose last user message's text parts become ``text`` (images kept)."""
    out = [dict(m) for m in prompt]
    for msg in reversed(out):
        if msg.get("role") == "user":
            content = msg["content"]
            if isinstance(content, str):
                msg["content"] = text
            else:
                parts = [p for p in content if p.get("type") != "text"]
                msg["content"] = [*parts, {"type": "text", "text": text}]
            break
    return out


def _should_refuse(row: dict[str, Any]) -> bool:
    """A row's ground truth says refuse (unknown, None or NaN, counts as no)."""
    value = row.get("should_refuse")
    return value is not None and value == value and bool(value)


def _text_message(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": [{"type": "text", "text": text}]}


@dataclass
class RolloutStats:
    """Counts of one rollout call (one generation batch on one process)."""

    sampled: int = 0
    unsafe: int = 0
    corrected: int = 0
    corrected_safe: int = 0
    uncorrected: int = 0
    safety: list[float] = field(default_factory=list)
    should_refuse: list[bool] = field(default_factory=list)  # per sampled row, aligned with safety
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per rollout phase

    def metrics(self) -> dict[str, float]:
        scored = [s for s in self.safety if not math.isnan(s)]
        # Benign prompts' samples are always safe: this one follows the policy on harmful prompts.
        pairs = zip(self.safety, self.should_refuse, strict=False)
        harmful = [s for s, refuse in pairs if refuse and not math.isnan(s)]
        return {
            "rollout/unsafe_rate": self.unsafe / self.sampled if self.sampled else math.nan,
            "rollout/sample_safety": sum(scored) / len(scored) if scored else math.nan,
            "rollout/harmful_sample_safety": sum(harmful) / len(harmful) if harmful else math.nan,
            "rollout/corrected": float(self.corrected),
            "rollout/correction_success": (
                self.corrected_safe / self.corrected if self.corrected else math.nan
            ),
            "rollout/uncorrected": float(self.uncorrected),
            **{f"rollout/{phase}_s": t for phase, t in self.seconds.items()},
        }

    @contextlib.contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the wall time of the block to ``seconds[phase]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - t0


@dataclass
class _Batch:
    """One rollout call: the prompts and their dataset rows, and what each step fills in."""

    prompts: list[Any]
    inputs: list[dict[str, Any]]
    group: int  # completions per prompt (the GRPO group)
    add: bool  # correction_mode add: corrections go to free slots, not over their sample
    slots: int  # rows per group kept for corrections (add mode), else 0
    sample_rows: list[int]  # rows that sample; k below indexes into this list
    completion_ids: list[list[int]]
    roles: list[str]
    sample_logps: list[list[float] | None]
    stats: RolloutStats
    prompt_ids: list[Any] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    safety: list[float] = field(default_factory=list)
    logprobs: list[list[float]] | None = None


class SafetyAwareRollout:
    """The reflect-and-correct rollout; pass an instance as ``GRPOTrainer(rollout_func=...)``.

    Args:
        judge: the reward judge (the same one the structured reward uses).
        params: the ``grpo`` section (threshold, mode, templates, lengths).
    """

    def __init__(self, judge: Judge, params: GRPOParams) -> None:
        self.judge = judge
        self.params = params
        self.history: list[dict[str, float]] = []
        self.last: dict[str, Any] = {}  # the last call's intermediate texts and ids (tests, debugging)

    # -- helpers on the trainer's own generation path ------------------------------------------
    @staticmethod
    def _generate(
        trainer: Any, prompts: list[Any], repeats: int, max_new_tokens: int | None = None
    ) -> tuple[list[list[int]], list[list[int]], list[list[float]] | None]:
        """Tokenise ``prompts`` and sample one completion each with the trainer's backend."""
        prompt_ids, images, mm_fields = trainer._tokenize_prompts(prompts)
        with _max_new_tokens(trainer, max_new_tokens):
            completion_ids, logprobs = trainer._generate_single_turn(prompt_ids, images, mm_fields, repeats)
        return [list(p) for p in prompt_ids], [list(c) for c in completion_ids], logprobs

    def _safety(self, rows: list[dict[str, Any]], texts: list[str]) -> list[float]:
        """The configured safety score of each text, judged against its dataset row."""
        if not texts:
            return []
        columns = {k: [r.get(k) for r in rows] for k in rows[0]}
        records = build_records(texts, columns)
        key = self.params.safety_score
        return [j.scores.get(key, math.nan) for j in self.judge.judge(records)]

    # -- the rollout: named steps over one batch ------------------------------------------------
    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, Any]:
        """Sample, judge, reflect on and correct the unsafe samples; return TRL's rollout dict."""
        batch = self._plan(prompts, trainer)
        self._sample_and_judge(batch, trainer)
        targets = self._assign_corrections(batch)
        elsewhere = _corrections_elsewhere(trainer, len(targets))  # collective: every process asks
        if targets:
            self._reflect_and_correct(batch, trainer, targets)
        else:
            self.last = {"rows": []}
            if elsewhere:
                self._join_passes(batch, trainer)
        return self._finish(batch, trainer)

    def _join_passes(self, batch: _Batch, trainer: Any) -> None:
        """Take part in the other processes' critique and correction passes without a row of
        our own: with sharded parameters every ``generate`` gathers them collectively, so a
        process that skipped the passes would leave the others waiting. Runs the passes on a
        throwaway copy of the first sample and drops what they return."""
        spare = _Batch(**{**vars(batch), "stats": RolloutStats()})
        spare.completion_ids, spare.roles = list(batch.completion_ids), list(batch.roles)
        spare.sample_logps = list(batch.sample_logps)
        self._reflect_and_correct(spare, trainer, {0: batch.sample_rows[0]})
        self.last = {"rows": []}

    def _plan(self, prompts: list[Any], trainer: Any) -> _Batch:
        """Check the batch is whole groups with their dataset rows; choose the rows that sample
        (``add`` mode keeps the last ``correction_slots`` of each group for corrections)."""
        n = len(prompts)
        g = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        inputs = getattr(trainer, "current_inputs", [])
        if len(inputs) != n:
            raise RuntimeError("the safety-aware rollout needs SafetyAwareGRPOTrainer (rows per prompt)")
        if n % g:
            raise RuntimeError(f"rollout batch of {n} rows is not made of whole groups of {g}")
        add = self.params.correction_mode == "add"
        slots = self.params.correction_slots if add else 0
        sample_rows = [i for i in range(n) if i % g < g - slots]
        return _Batch(
            prompts=prompts,
            inputs=inputs,
            group=g,
            add=add,
            slots=slots,
            sample_rows=sample_rows,
            completion_ids=[[trainer.eos_token_ids[0]] for _ in range(n)],
            roles=[PAD] * n,
            sample_logps=[None] * n,
            stats=RolloutStats(sampled=len(sample_rows)),
        )

    def _sample_and_judge(self, batch: _Batch, trainer: Any) -> None:
        """One completion per sampling row, judged; each placed in its row as a ``sample``."""
        rows, stats = batch.sample_rows, batch.stats
        batch.prompt_ids, _, _ = trainer._tokenize_prompts(batch.prompts)
        with stats.timed("generate"):
            _, sampled, batch.logprobs = self._generate(
                trainer, [batch.prompts[i] for i in rows], batch.group - batch.slots
            )
        batch.texts = trainer.processing_class.batch_decode(sampled, skip_special_tokens=True)
        with stats.timed("judge"):
            batch.safety = self._safety([batch.inputs[i] for i in rows], batch.texts)
        stats.safety = batch.safety
        stats.should_refuse = [_should_refuse(batch.inputs[i]) for i in rows]
        for k, i in enumerate(rows):
            batch.completion_ids[i], batch.roles[i] = sampled[k], SAMPLE
            batch.sample_logps[i] = None if batch.logprobs is None else batch.logprobs[k]

    def _assign_corrections(self, batch: _Batch) -> dict[int, int]:
        """Unsafe sample (index into ``sample_rows``) -> the row its correction goes to: its own
        row (``replace``), or a free slot of its group (``add``; none left: uncorrected)."""
        g, targets = batch.group, {}
        free = {
            grp: [grp * g + s for s in range(g - batch.slots, g)] for grp in range(len(batch.prompts) // g)
        }
        for k, i in enumerate(batch.sample_rows):
            if not batch.safety[k] < self.params.safety_threshold:  # NaN (unscored) is never unsafe
                continue
            batch.stats.unsafe += 1
            if not batch.add:
                targets[k] = i
            elif free[i // g]:
                targets[k] = free[i // g].pop(0)
            else:
                batch.stats.uncorrected += 1
        return targets

    def _reflect_and_correct(self, batch: _Batch, trainer: Any, targets: dict[int, int]) -> None:
        """Ask for a critique of each unsafe sample, then a corrected answer given the critique;
        judge the corrections and place them in their target rows as ``corrected``."""
        p, tok, stats, ks = self.params, trainer.processing_class, batch.stats, list(targets)
        prompt_of = [batch.prompts[batch.sample_rows[k]] for k in ks]
        reflect = [
            [
                *prompt,
                _text_message("assistant", batch.texts[k]),
                _text_message("user", p.reflection_template.format(question=_user_text(prompt))),
            ]
            for k, prompt in zip(ks, prompt_of, strict=True)
        ]
        if p.critique_and_correction == "one_continuation":
            texts = [p.continuation_template.format(question=_user_text(prompt)) for prompt in prompt_of]
            cap = trainer.generation_config.max_new_tokens
            with stats.timed("continuation"):
                reflect_ids, parts = generate_continuations(
                    trainer, reflect, texts, p.reflection_max_tokens, cap
                )
            critique_ids = [c.critique for c in parts]
            corrected = [c.correction for c in parts]
            correction_prompt_ids = [
                r + c.critique + c.bridge for r, c in zip(reflect_ids, parts, strict=True)
            ]
            critiques = [c.strip() for c in tok.batch_decode(critique_ids, skip_special_tokens=True)]
        else:
            with stats.timed("reflect"):
                _, critique_ids, _ = self._generate(trainer, reflect, 1, p.reflection_max_tokens)
            critiques = [c.strip() for c in tok.batch_decode(critique_ids, skip_special_tokens=True)]
            correct = [
                _with_user_text(prompt, p.correction_template.format(question=_user_text(prompt), critique=c))
                for prompt, c in zip(prompt_of, critiques, strict=True)
            ]
            with stats.timed("correct"):
                correction_prompt_ids, corrected, _ = self._generate(trainer, correct, 1)
        corrected_texts = tok.batch_decode(corrected, skip_special_tokens=True)
        with stats.timed("judge"):
            corrected_safety = self._safety([batch.inputs[targets[k]] for k in ks], corrected_texts)
        for k, ids, s in zip(ks, corrected, corrected_safety, strict=True):
            row = targets[k]
            batch.completion_ids[row], batch.roles[row] = ids, CORRECTED
            # NaN sampling log-probs: under vLLM's IS correction TRL gives these tokens ratio 1.
            batch.sample_logps[row] = None if batch.logprobs is None else [math.nan] * len(ids)
            stats.corrected += 1
            stats.corrected_safe += int(s >= p.safety_threshold)
        self.last = {
            "rows": [targets[k] for k in ks],
            "critiques": critiques,
            "critique_ids": critique_ids,
            "correction_prompt_ids": correction_prompt_ids,
            "correction_ids": corrected,
            "corrections": corrected_texts,
            "correction_safety": corrected_safety,
        }

    def _finish(self, batch: _Batch, trainer: Any) -> dict[str, Any]:
        """Log the rollout's metrics; the dict TRL expects (padding rows masked out)."""
        metrics = batch.stats.metrics()
        self.history.append(metrics)
        for name, value in metrics.items():
            if not math.isnan(value):
                trainer._log_metric(name, value)
        log.debug("rollout: %s", metrics)
        out: dict[str, Any] = {
            "prompt_ids": [list(ids) for ids in batch.prompt_ids],
            "completion_ids": batch.completion_ids,
            "logprobs": None if batch.logprobs is None else [lp or [math.nan] for lp in batch.sample_logps],
            "rollout_role": batch.roles,
        }
        if PAD in batch.roles:
            out["env_mask"] = [
                [int(r != PAD)] * len(c) for c, r in zip(batch.completion_ids, batch.roles, strict=True)
            ]
        return out


def _corrections_elsewhere(trainer: Any, corrections: int) -> bool:
    """Whether any process of a parameter-sharded run (ZeRO-3, FSDP) corrects rows in this
    call (``corrections``: this process's count; a collective, so every process calls it).
    Always False, without communicating, with one process or with replicated parameters (DDP,
    ZeRO-1/2), where each process generates on its own."""
    accelerator = trainer.accelerator
    if accelerator.num_processes < 2:
        return False
    plugin = getattr(accelerator.state, "deepspeed_plugin", None)
    zero3 = trainer.is_deepspeed_enabled and plugin is not None and plugin.zero_stage == 3
    if not (zero3 or trainer.is_fsdp_enabled):
        return False
    from accelerate.utils import gather_object

    counts = gather_object([corrections])
    log.debug("rollout: corrections per process %s", counts)
    return any(counts)


@contextlib.contextmanager
def _max_new_tokens(trainer: Any, value: int | None) -> Iterator[None]:
    """Temporarily cap generation length (HF backend; vLLM keeps its configured maximum)."""
    config = getattr(trainer, "generation_config", None)
    if value is None or config is None:
        yield
        return
    old = config.max_new_tokens
    config.max_new_tokens = min(value, old or value)
    try:
        yield
    finally:
        config.max_new_tokens = old


class SampleSafetyMonitor(Judge):
    """A judge proxy for plain GRPO that records the policy samples' safety per call.

    In plain GRPO every reward call judges exactly the policy's samples, so the recorded
    ``rollout/sample_safety`` and ``rollout/unsafe_rate`` mean the same as the safety-aware
    rollout's (measured there before any correction), and the two runs compare step by step.
    """

    def __init__(self, judge: Judge, params: GRPOParams) -> None:
        self.inner = judge
        self.name, self.version = judge.name, judge.version
        self.params = params
        self.history: list[dict[str, float]] = []

    def judge(self, records: list[dict[str, Any]]) -> list[Judgment]:
        out = self.inner.judge(records)
        stats = RolloutStats(
            sampled=len(out),
            safety=[j.scores.get(self.params.safety_score, math.nan) for j in out],
            should_refuse=[_should_refuse(r) for r in records],
        )
        stats.unsafe = sum(s < self.params.safety_threshold for s in stats.safety)
        m = stats.metrics()
        keys = ("rollout/unsafe_rate", "rollout/sample_safety", "rollout/harmful_sample_safety")
        self.history.append({k: m[k] for k in keys})
        return out

    def use_cache(self, path: str) -> None:
        self.inner.use_cache(path)


def skip_padding(reward: Any) -> Any:
    """Wrap a TRL reward function so rows the rollout marked as padding get ``None``.

    Padding rows exist only in ``add`` mode (empty correction slots); a None reward keeps
    them out of the group's mean and std and gives them advantage 0.
    """

    def wrapped(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        roles = kwargs.get("rollout_role")
        if not roles or PAD not in roles:
            return list(reward(prompts=prompts, completions=completions, **kwargs))
        keep = [i for i, r in enumerate(roles) if r != PAD]
        n = len(completions)

        def sub(v: Any) -> Any:
            return [v[i] for i in keep] if isinstance(v, list) and len(v) == n else v

        scored = reward(
            prompts=sub(prompts), completions=sub(completions), **{k: sub(v) for k, v in kwargs.items()}
        )
        out: list[float | None] = [None] * n
        for i, r in zip(keep, scored, strict=True):
            out[i] = r
        return out

    wrapped.__name__ = getattr(reward, "__name__", "reward")
    return wrapped
