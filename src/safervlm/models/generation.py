"""Generation backends: HF (left padding, length-sorted batches), an OpenAI-compatible
server (e.g. ``vllm serve``) and vLLM's offline engine; :func:`build_generator` picks one.

Shared by evaluation (``evaluate.generate``), QI scoring and the local HF judge, so it lives
below all three. Output order always matches input order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from tqdm import tqdm
from transformers import CompileConfig

from safervlm.config import GenerateParams
from safervlm.models.processor import load_policy
from safervlm.prompts import build_prompt
from safervlm.schema import decode_image, image_data_url


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


class HFGenerator:
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

    @torch.inference_mode()
    def generate(
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
    ) -> list[list[str]]:
        """Return ``num_samples`` responses per question, in input order."""
        torch.manual_seed(seed)
        order = sorted(
            range(len(questions)), key=lambda i: len(questions[i])
        )  # similar lengths batch together
        out: list[list[str]] = [[] for _ in questions]
        gen_kwargs: dict[str, Any] = {
            **self.cache_kwargs,
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "num_return_sequences": num_samples,
        }
        if do_sample:
            gen_kwargs["temperature"] = temperature
        for start in tqdm(range(0, len(order), batch_size), desc="generate", leave=False):
            idx = order[start : start + batch_size]
            inputs = self._encode([questions[i] for i in idx], [images[i] for i in idx])
            ids = self.model.generate(**inputs, **gen_kwargs)
            texts = self.processor.batch_decode(
                ids[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True
            )
            for j, i in enumerate(idx):
                out[i] = [t.strip() for t in texts[j * num_samples : (j + 1) * num_samples]]
        return out


class OpenAIGenerator:
    """Generates through an OpenAI-compatible chat-completions server (e.g. ``vllm serve``).

    Requests run ``concurrency`` at a time; the server does the batching (vLLM's
    continuous batching). The API key, if any, is read from the environment only.
    """

    def __init__(self, params: GenerateParams, model_path: str) -> None:
        import openai

        if not params.base_url:
            raise ValueError("generate.backend 'openai' needs generate.base_url (e.g. http://host:8000/v1)")
        key = os.environ.get(params.api_key_env, "") if params.api_key_env else ""
        self.client = openai.OpenAI(base_url=params.base_url, api_key=key or "EMPTY", max_retries=3)
        self.model = params.served_model or model_path
        self.params = params

    def _one(
        self, question: str, image: bytes | None, max_new_tokens: int, temperature: float, seed: int
    ) -> str:
        content: list[dict[str, Any]] = []
        if image is not None:
            content.append({"type": "image_url", "image_url": {"url": image_data_url(image)}})
        content.append({"type": "text", "text": question})
        messages: list[dict[str, Any]] = []
        if self.params.system_prompt:
            messages.append({"role": "system", "content": self.params.system_prompt})
        messages.append({"role": "user", "content": content})
        reply = self.client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_new_tokens,
            temperature=temperature,
            seed=seed,
        )
        return str(reply.choices[0].message.content or "").strip()

    def generate(
        self,
        questions: Sequence[str],
        images: Sequence[bytes | None],
        *,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        seed: int = 0,
        **_: Any,
    ) -> list[list[str]]:
        """One response per question, in input order (greedy = temperature 0)."""
        temp = temperature if do_sample else 0.0
        with ThreadPoolExecutor(max_workers=max(1, self.params.concurrency)) as pool:
            futures = [
                pool.submit(self._one, q, img, max_new_tokens, temp, seed)
                for q, img in zip(questions, images, strict=True)
            ]
            return [[f.result()] for f in tqdm(futures, desc="generate", leave=False)]


class VLLMGenerator:
    """vLLM's offline engine (``vllm.LLM.chat``), for GPU nodes; imported lazily."""

    def __init__(self, params: GenerateParams, model_path: str) -> None:
        from vllm import LLM

        self.llm = LLM(model=model_path, seed=0, limit_mm_per_prompt={"image": 1})
        self.params = params

    def generate(
        self,
        questions: Sequence[str],
        images: Sequence[bytes | None],
        *,
        max_new_tokens: int = 64,
        do_sample: bool = False,
        temperature: float = 1.0,
        seed: int = 0,
        **_: Any,
    ) -> list[list[str]]:
        """One response per question, in input order; vLLM batches internally."""
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
        return [[o.outputs[0].text.strip()] for o in outputs]


BACKENDS = ("hf", "openai", "vllm")


def build_generator(model_path: str, params: GenerateParams) -> Any:
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
