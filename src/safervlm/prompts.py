"""Chat prompts shared by training, rollouts and evaluation."""

from __future__ import annotations

from typing import Any


def build_prompt(
    question: str, *, has_image: bool = True, system_prompt: str | None = None
) -> list[dict[str, Any]]:
    """A conversational prompt: optional system turn, then one user turn (image, text)."""
    content: list[dict[str, Any]] = [{"type": "image"}] if has_image else []
    content.append({"type": "text", "text": question})
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    messages.append({"role": "user", "content": content})
    return messages
