"""Chat prompts shared by training, rollouts and evaluation."""

from __future__ import annotations

from typing import Any


def build_prompt(question: str, *, has_image: bool = True, system_prompt: str | None = None) -> list[dict[str, Any]]:
    """A conversational prompt: optional system turn, then one user turn (image, text)."""
    content: list[dict[str, Any]] = [{"type": "image"}] if has_image else []
    content.append({"type": "text", "text": question})
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    messages.append({"role": "user", "content": content})
    return messages


def completion_text(completion: Any) -> str:
    """Text of a TRL completion: a string, or conversational messages with str or part contents."""
    if isinstance(completion, str):
        return completion
    parts: list[str] = []
    for message in completion:
        content = message.get("content", "") if isinstance(message, dict) else message
        if isinstance(content, str):
            parts.append(content)
        else:
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return "".join(parts)
