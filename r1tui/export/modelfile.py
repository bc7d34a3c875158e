"""An Ollama Modelfile beside the GGUF, speaking the training format.

The template reproduces the chat format the model was trained on: ``[INST] user[/INST]``
then `` answer</s>`` per turn for v3 (SentencePiece); Tekken has no space after
``[INST]`` nor before the answer (``[INST]user[/INST]answer</s>``), as mistral-common
renders it. A system prompt is put in front of the last user message (as mistral-common
does for v3); in the v7 format (Mistral Small 3.x) every system message stays in place as
``[SYSTEM_PROMPT]text[/SYSTEM_PROMPT]``. BOS is added by llama.cpp from the GGUF's ``add_bos_token``. Generation stops at
``</s>`` and at ``[INST]`` (a model that starts a new turn).
"""

from __future__ import annotations

from pathlib import Path

from r1tui.quants import UNQUANTIZED, quant_of
from r1tui.runs.files import write_text_atomic

STOP_TOKENS = ("</s>", "[INST]")


def ollama_template(tekken: bool = False, system_in_place: bool = False) -> str:
    """Go template (Ollama). v3: a user message gets the system prompt when it is the last user
    message (at most one message, the answer, follows it). v7 (``system_in_place``, Tekken):
    each system message where it stands, between [SYSTEM_PROMPT] and [/SYSTEM_PROMPT]."""
    if system_in_place:
        return (
            '{{- range $index, $_ := .Messages }}\n'
            '{{- if eq .Role "system" }}[SYSTEM_PROMPT]{{ .Content }}[/SYSTEM_PROMPT]\n'
            '{{- else if eq .Role "user" }}[INST]{{ .Content }}[/INST]\n'
            '{{- else if eq .Role "assistant" }}{{ .Content }}</s>\n'
            '{{- end }}\n'
            '{{- end }}'
        )
    space = "" if tekken else " "
    return (
        '{{- range $index, $_ := .Messages }}\n'
        '{{- if eq .Role "user" }}\n'
        f'{{{{- if and $.System (le (len (slice $.Messages $index)) 2) }}}}[INST]{space}{{{{ $.System }}}}\n'
        '\n'
        '{{ .Content }}[/INST]\n'
        f'{{{{- else }}}}[INST]{space}{{{{ .Content }}}}[/INST]\n'
        '{{- end }}\n'
        f'{{{{- else if eq .Role "assistant" }}}}{space}{{{{ .Content }}}}</s>\n'
        '{{- end }}\n'
        '{{- end }}'
    )


def render_modelfile(gguf_name: str, *, num_ctx: int, system: str = "", others: list[str] | None = None,
                     tekken: bool = False, system_in_place: bool = False) -> str:
    lines = [
        "# Ollama Modelfile written by r1tui. Create the model with:",
        f"#   ollama create <name> -f Modelfile   (run beside {gguf_name})",
    ]
    if others:
        lines.append("# Other quantizations in this folder (change FROM to use one): " + ", ".join(others))
    lines += [f"FROM ./{gguf_name}", "", f'TEMPLATE """{ollama_template(tekken, system_in_place)}"""', ""]
    if system:
        lines += [f'SYSTEM """{system}"""', ""]
    lines += [f'PARAMETER stop "{stop}"' for stop in STOP_TOKENS]
    lines += [f"PARAMETER num_ctx {num_ctx}", ""]
    return "\n".join(lines)


def modelfile_gguf(gguf_names: list[str]) -> str:
    """The GGUF a Modelfile's FROM names: the first quantized file (an unquantized one only
    when nothing else exists)."""
    preferred = [name for name in gguf_names if quant_of(name) not in UNQUANTIZED] or gguf_names
    return preferred[0]


def write_modelfile(path: Path, gguf_names: list[str], *, num_ctx: int, system: str = "",
                    tekken: bool = False, system_in_place: bool = False) -> Path:
    """The Modelfile at ``path`` (``RunLayout.modelfile``, beside the GGUFs), FROM ``modelfile_gguf``."""
    chosen = modelfile_gguf(gguf_names)
    text = render_modelfile(chosen, num_ctx=num_ctx, system=system,
                            others=[name for name in gguf_names if name != chosen], tekken=tekken,
                            system_in_place=system_in_place)
    return write_text_atomic(Path(path), text)
