"""SaFeR-VLM pipeline: safety-aware RL for multimodal reasoning models, and its audit."""

__version__ = "0.1.0"
