"""Generation with the models users run: a GGUF through llama.cpp, or a folder through transformers.

Prompts are always rendered with the training template (mistral-common's encoding of
the conversation), never with a chat template guessed by the runtime. ``[infer]``
(``r1tui.infer.thinking``) prefills the think opening and forces the think block's length.
Heavy imports (llama_cpp, torch, transformers) happen inside the classes only.
"""

from r1tui.infer.prompt import Message, render_prompt_ids
from r1tui.infer.stream import Generation, GenerationStats, ThinkSplitter
from r1tui.infer.thinking import ThinkSettings

__all__ = ["Generation", "GenerationStats", "Message", "ThinkSettings", "ThinkSplitter", "render_prompt_ids"]
