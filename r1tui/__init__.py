"""r1tui: distil DeepSeek-R1-style reasoning into Mistral Small with LoRA.

The pipeline (config -> data -> train -> export -> eval -> infer) is a library that
runs headless; the Textual dashboard in ``r1tui.dashboard`` is one client of it.
"""

__version__ = "0.1.0"
