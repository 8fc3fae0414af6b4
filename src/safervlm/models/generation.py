"""Generation backends: HF (left padding, length-sorted batches), an OpenAI-compatible
server (e.g. ``vllm serve``) and vLLM's offline engine; :func:`build_generator` picks one.

Shared by evaluation (``evaluate.generate``), QI scoring and the local HF judge, so it lives
below all three. Output order always matches input order. Every backend has ``generate``
(the texts, for QI scoring and the HF judge) and ``generate_records`` (one
:class:`~safervlm.schema.Generation` per response: the text, a served reply's reasoning
field, the finish reason and token counts, for evaluation).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from tqdm import tqdm
from transformers import CompileConfig

from safervlm import served
from safervlm.config import GenerateParams
from safervlm.errors import EndpointError
from safervlm.models.processor import load_policy
from safervlm.prompts import build_prompt
from safervlm.schema import Generation, decode_image, image_data_url

logger = logging.getLogger(__name__)


def compile_config(cache_implementation: str) -> CompileConfig:
    """How HF ``generate`` compiles its decoding forward, in one place; only over a static KV
    cache (with another, transformers would silently not compile), so anything else raises.

    On every device, CPU included (transformers compiles on GPUs only unless told otherwise;
    the config key says to). Shapes are left to torch's automatic dynamic shapes: the first
    prompt length compiles, the second compiles once more with the length dynamic, and later
    lengths reuse that graph; ``dynamic=False`` would compile again for every new length (each
    length-sorted batch, each GRPO batch) and fall back to eager after torch's recompile limit.
    """
    if cache_implementation != "static":
        raise ValueError("compile needs cache_implementation='static'")
    config = CompileConfig()
    config._compile_all_devices = True  # type: ignore[assignment]
    return config


class Generator:
    """A backend: :meth:`generate_records` (one :class:`~safervlm.schema.Generation` per
    response, for evaluation) and :meth:`generate`, its texts (for QI scoring and the HF judge,
    which need no more; a served reply's reasoning field is not included)."""

    def generate_records(
        self, questions: Sequence[str], images: Sequence[bytes | None], **kwargs: Any
    ) -> list[list[Generation]]:
        """Generations per question, in input order."""
        raise NotImplementedError

    def generate(
        self, questions: Sequence[str], images: Sequence[bytes | None], **kwargs: Any
    ) -> list[list[str]]:
        """The texts of :meth:`generate_records`, in input order."""
        return [[g.content for g in row] for row in self.generate_records(questions, images, **kwargs)]


class HFGenerator(Generator):
    """Generates responses from a local Qwen2.5-VL-family policy.

    Each batch stops as soon as every row has emitted EOS (``generate``'s own stopping), so
    a batch costs its longest response, not ``max_new_tokens``.

    Args:
        cache_implementation: ``dynamic`` (the default) or ``static`` (a preallocated KV cache).
        compile: compile the decoding forward (static cache only; on every device, CPU included).
    """

    def __init__(
        self,
        model_path: str,
        system_prompt: str | None = None,
        cache_implementation: str = "dynamic",
        compile: bool = False,
    ) -> None:
        self.model, self.processor = load_policy(model_path)
        self.model.eval()
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device)
        self.processor.tokenizer.padding_side = "left"
        self.system_prompt = system_prompt
        self.cache_kwargs: dict[str, Any] = {}
        if compile:
            self.cache_kwargs["compile_config"] = compile_config(cache_implementation)
        if cache_implementation == "static":
            self.cache_kwargs["cache_implementation"] = "static"
            if not compile:
                self.cache_kwargs["disable_compile"] = True

    def _encode(self, questions: Sequence[str], images: Sequence[bytes | None]) -> Any:
        texts = [
            self.processor.apply_chat_template(
                build_prompt(q, has_image=img is not None, system_prompt=self.system_prompt),
                add_generation_prompt=True,
                tokenize=False,
            )
            for q, img in zip(questions, images, strict=True)
        ]
        pil = [[decode_image(img)] if img is not None else [] for img in images]
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        if any(pil):
            kwargs["images"] = pil
        return self.processor(**kwargs).to(self.device)

    def _eos_ids(self) -> set[int]:
        """The ids ``generate`` stops on (the generation config's, else the tokenizer's EOS)."""
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.processor.tokenizer.eos_token_id
        return set(eos if isinstance(eos, list) else [] if eos is None else [eos])

    @torch.inference_mode()
    def generate_records(  # type: ignore[override]
        self,
        questions: Sequence[str],
        images: Sequence[bytes | None],
        *,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        num_samples: int = 1,
        batch_size: int = 32,
        seed: int = 0,
    ) -> list[list[Generation]]:
        """``num_samples`` generations per question, in input order, with how each ended.

        A row that emitted no EOS within ``max_new_tokens`` ends ``length`` (truncated),
        else ``stop``; ``completion_tokens`` counts the generated tokens up to and with the
        EOS (not the padding after it), ``prompt_tokens`` the prompt's (image tokens included).
        """
        torch.manual_seed(seed)
        order = sorted(
            range(len(questions)), key=lambda i: len(questions[i])
        )  # similar lengths batch together
        out: list[list[Generation]] = [[] for _ in questions]
        gen_kwargs: dict[str, Any] = {
            **self.cache_kwargs,
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "num_return_sequences": num_samples,
        }
        if do_sample:
            gen_kwargs["temperature"] = temperature
        eos = self._eos_ids()
        for start in tqdm(range(0, len(order), batch_size), desc="generate", leave=False):
            idx = order[start : start + batch_size]
            inputs = self._encode([questions[i] for i in idx], [images[i] for i in idx])
            ids = self.model.generate(**inputs, **gen_kwargs)
            new = ids[:, inputs["input_ids"].shape[1] :]
            texts = self.processor.batch_decode(new, skip_special_tokens=True)
            prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
            for j, i in enumerate(idx):
                rows = range(j * num_samples, (j + 1) * num_samples)
                out[i] = [self._record(texts[r], new[r].tolist(), eos, int(prompt_lengths[j])) for r in rows]
        return out

    @staticmethod
    def _record(text: str, ids: list[int], eos: set[int], prompt_tokens: int) -> Generation:
        stop = next((k for k, t in enumerate(ids) if t in eos), None)
        return Generation(
            content=text.strip(),
            finish_reason="length" if stop is None else "stop",
            prompt_tokens=prompt_tokens,
            completion_tokens=len(ids) if stop is None else stop + 1,
        )


class OpenAIGenerator(Generator):
    """Generates through an OpenAI-compatible chat-completions server (e.g. ``vllm serve``).

    Requests run ``concurrency`` at a time; the server does the batching (vLLM's
    continuous batching). A reply's reasoning field (``reasoning``, or vLLM's older
    ``reasoning_content``) is kept apart from its content; ``finish_reason`` and ``usage``
    are recorded. ``reasoning_effort`` and ``extra_body`` are passed through.

    Errors: 429, 5xx, timeouts and connection errors are retried (``max_attempts``, with the
    backoff of :mod:`safervlm.served`); anything else, or a request out of attempts, fails
    the whole run with one :class:`~safervlm.errors.EndpointError` line naming the model,
    the URL, the HTTP status and the server's message. The API key is read from the
    environment variable ``api_key_env`` only; one declared but unset is an error.
    """

    # Request fields the generator sets itself; extra_body never replaces them.
    OWN_FIELDS = ("model", "messages", "max_tokens", "temperature", "seed")

    def __init__(self, params: GenerateParams, model_path: str) -> None:
        import openai

        if not params.base_url:
            raise ValueError("generate.backend 'openai' needs generate.base_url (e.g. http://host:8000/v1)")
        self.name = model_path
        self.model = params.served_model or model_path
        self.where = f"served model {model_path!r} ({self.model} at {params.base_url})"
        try:
            key = served.api_key(params)
        except EndpointError as exc:
            raise EndpointError(f"{self.where}: {exc}") from None
        # Retries are ours (served.backoff_delay), so that a failure names what failed.
        self.client = openai.OpenAI(
            base_url=params.base_url, api_key=key or "EMPTY", max_retries=0, timeout=float(params.timeout)
        )
        self.params = params
        self._rng = random.Random()

    def _body(
        self, question: str, image: bytes | None, max_new_tokens: int, temperature: float, seed: int
    ) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if image is not None:
            content.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
        content.append({"type": "text", "text": question})
        messages: list[dict[str, Any]] = []
        if self.params.system_prompt:
            messages.append({"role": "system", "content": self.params.system_prompt})
        messages.append({"role": "user", "content": content})
        body: dict[str, Any] = {k: v for k, v in self.params.extra_body.items() if k not in self.OWN_FIELDS}
        if self.params.reasoning_effort:
            body["reasoning_effort"] = self.params.reasoning_effort
        body.update(model=self.model, messages=messages, max_tokens=max_new_tokens, temperature=temperature,
                    seed=seed)  # fmt: skip
        return body

    def _one(self, body: dict[str, Any]) -> Generation:
        import openai

        attempt = 0
        while True:
            attempt += 1
            try:
                # The client's raw-request path (as the judge): its transport, auth and HTTP
                # errors, and the reply's every field (the reasoning fields are not in its types).
                raw = self.client.post("/chat/completions", body=body, cast_to=str)
                return served.parse_chat_completion(raw)
            except (openai.OpenAIError, ValueError) as exc:
                if not served.retryable(exc) or attempt >= self.params.max_attempts:
                    raise self._error(exc, attempt) from None
                delay = served.backoff_delay(attempt, exc, base=0.5, cap=30.0, rng=self._rng)
                logger.warning(
                    "%s: %s, retry %d in %.1fs", self.where, served.describe_error(exc), attempt, delay
                )
                time.sleep(delay)

    def _error(self, exc: BaseException, attempts: int) -> EndpointError:
        status = getattr(exc, "status_code", None)
        what = f"HTTP {status}" if status is not None else type(exc).__name__
        if status == 404:
            what += " (is the served model name right? GET /models lists the names)"
        elif status in (401, 403):
            what += f" (the key in {self.params.api_key_env or 'no api_key_env'} was refused)"
        message = served.server_message(exc)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return EndpointError(f"{self.where}: {what}{tries}" + (f": {message}" if message else ""))

    def generate_records(
        self,
        questions: Sequence[str],
        images: Sequence[bytes | None],
        *,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        seed: int = 0,
        **_: Any,
    ) -> list[list[Generation]]:
        """One generation per question, in input order (greedy = temperature 0).

        Raises:
            EndpointError: a request failed for good; requests not yet sent are cancelled.
        """
        temp = temperature if do_sample else 0.0
        bodies = [
            self._body(q, img, max_new_tokens, temp, seed) for q, img in zip(questions, images, strict=True)
        ]
        pool = ThreadPoolExecutor(max_workers=max(1, self.params.concurrency))
        try:
            futures = [pool.submit(self._one, b) for b in bodies]
            return [[f.result()] for f in tqdm(futures, desc="generate", leave=False)]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class VLLMGenerator(Generator):
    """vLLM's offline engine (``vllm.LLM.chat``), for GPU nodes; imported lazily."""

    def __init__(self, params: GenerateParams, model_path: str) -> None:
        from vllm import LLM

        self.llm = LLM(model=model_path, seed=0, limit_mm_per_prompt={"image": 1})
        self.params = params

    def generate_records(
        self,
        questions: Sequence[str],
        images: Sequence[bytes | None],
        *,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        seed: int = 0,
        **_: Any,
    ) -> list[list[Generation]]:
        """One generation per question, in input order; vLLM batches internally."""
        from vllm import SamplingParams

        conversations = []
        for q, img in zip(questions, images, strict=True):
            content: list[dict[str, Any]] = (
                [{"type": "image_url", "image_url": {"url": image_data_url(img)}}] if img else []
            )
            content.append({"type": "text", "text": q})
            system = (
                [{"role": "system", "content": self.params.system_prompt}]
                if self.params.system_prompt
                else []
            )
            conversations.append([*system, {"role": "user", "content": content}])
        sampling = SamplingParams(
            max_tokens=max_new_tokens, temperature=temperature if do_sample else 0.0, seed=seed
        )
        outputs = self.llm.chat(conversations, sampling)
        return [
            [
                Generation(
                    content=o.outputs[0].text.strip(),
                    finish_reason=str(o.outputs[0].finish_reason or ""),
                    prompt_tokens=len(o.prompt_token_ids or []),
                    completion_tokens=len(o.outputs[0].token_ids),
                )
            ]
            for o in outputs
        ]


BACKENDS = ("hf", "openai", "vllm")


def build_generator(model_path: str, params: GenerateParams) -> Generator:
    """The generator of ``params.backend`` (``hf``, ``openai`` or ``vllm``)."""
    if params.backend == "hf":
        return HFGenerator(
            model_path,
            system_prompt=params.system_prompt,
            cache_implementation=params.cache_implementation,
            compile=params.compile,
        )
    if params.backend == "openai":
        return OpenAIGenerator(params, model_path)
    if params.backend == "vllm":
        return VLLMGenerator(params, model_path)
    raise ValueError(f"unknown generate.backend {params.backend!r}; known: {list(BACKENDS)}")
