"""A token-level view of one prepared example: what the loss sees and what it ignores.

Masked tokens (label -100) are dim, trained tokens are bright green, control tokens
(``<s>``, ``[INST]``, ``[/INST]``, ``</s>``) magenta; neighbouring tokens alternate their
background so token boundaries show. ``show_ids`` writes each id after its token in
subscript digits. The CLI (``r1tui prepare --preview``) and the dashboard both use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from r1tui.data.render import IGNORE_INDEX, ChatRenderer, load_renderer

if TYPE_CHECKING:
    from rich.console import Group

_SUBSCRIPT = str.maketrans("0123456789-", "₀₁₂₃₄₅₆₇₈₉₋")
_STYLES = {  # (masked, trained) x alternating background
    "text": (("grey58 on grey11", "grey58 on grey19"), ("bold bright_green on #0b2a12", "bold bright_green on #14401e")),
    "control": (("magenta on grey11", "magenta on grey19"), ("bold magenta on #0b2a12", "bold magenta on #14401e")),
}


def token_preview(input_ids: Sequence[int], labels: Sequence[int], tokenizer_spec: str | ChatRenderer,
                  show_ids: bool = False, max_tokens: int | None = None, title: str | None = None) -> Group:
    """A Rich renderable of one example's tokens, styled by whether each is trained."""
    from rich.console import Group
    from rich.text import Text

    renderer = tokenizer_spec if isinstance(tokenizer_spec, ChatRenderer) else load_renderer(tokenizer_spec)
    if len(input_ids) != len(labels):
        raise ValueError(f"input_ids ({len(input_ids)}) and labels ({len(labels)}) differ in length")
    trained = sum(1 for label in labels if label != IGNORE_INDEX)
    header = Text()
    if title:
        header.append(title + "  ", style="bold")
    header.append(f"{len(input_ids):,} tokens: ")
    header.append(f"{trained:,} trained", style="bold bright_green")
    header.append(", ")
    header.append(f"{len(input_ids) - trained:,} masked (-100)", style="grey58")
    shown = input_ids if max_tokens is None else input_ids[:max_tokens]
    body = Text()
    for position, token_id in enumerate(shown):
        is_trained = labels[position] != IGNORE_INDEX
        kind = "control" if renderer.is_control(token_id) else "text"
        style = _STYLES[kind][is_trained][position % 2]
        piece = renderer.piece(token_id)
        if "\n" in piece:
            body.append(piece.replace("\n", "↵"), style=style)
            if show_ids:
                body.append(str(token_id).translate(_SUBSCRIPT), style="dim")
            body.append("\n")
            continue
        body.append(piece, style=style)
        if show_ids:
            body.append(str(token_id).translate(_SUBSCRIPT), style="dim")
    if max_tokens is not None and len(input_ids) > max_tokens:
        body.append(f" … {len(input_ids) - max_tokens:,} more tokens", style="italic dim")
    return Group(header, body)
