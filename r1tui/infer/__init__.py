"""Generation with the models users run: a GGUF through llama.cpp, or a folder through transformers.

Prompts are always rendered with the training template (mistral-common's encoding of
the conversation), never with a chat template guessed by the runtime.
Heavy imports (llama_cpp, torch, transformers) happen inside the classes only.
"""

from r1tui.infer.prompt import Message, render_prompt_ids
from r1tui.infer.stream import Generation, GenerationStats, ThinkSplitter

__all__ = ["Generation", "GenerationStats", "Message", "ThinkSplitter", "render_prompt_ids"]
