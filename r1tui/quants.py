"""GGUF quant types: the one list of names, the order a GGUF is chosen in, and the one
way to read a quant type back from a file name. Pure Python, imports nothing of ours."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

# What export can write (config validation, `r1tui export --quant`, the calculator's table).
QUANT_TYPES = ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16")
# When a consumer needs "the" GGUF of a run and none is configured: the smallest
# k-quant first (what people serve and evaluate), the unquantized file last.
GGUF_PREFERENCE = ("Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16", "F32")
UNQUANTIZED = frozenset({"F16", "BF16", "F32"})
# Quant types whose rounding an importance matrix steers (export.imatrix writes a twin of each,
# ``<stem>-imatrix-<QUANT>.gguf``); Q8_0 rounds every block the same way with or without one.
IMATRIX_QUANTS = frozenset({"Q4_K_M", "Q5_K_M", "Q6_K"})
IMATRIX_PREFIX = "imatrix-"

_QUANT_IN_NAME = re.compile(r"(?:^|[-_.])((?:I?Q\d(?:_K)?(?:_[SMLX]{1,2})?|Q\d_\d|BF16|F16|F32))$", re.IGNORECASE)


def quant_of(path: str | Path) -> str | None:
    """The quant type a GGUF's file name ends with (``x-Q4_K_M.gguf`` -> ``Q4_K_M``), else None."""
    match = _QUANT_IN_NAME.search(Path(path).name.removesuffix(".gguf"))
    return match.group(1).upper() if match else None


def label_of(path: str | Path) -> str | None:
    """What export calls a GGUF: its quant type, ``imatrix-`` in front when it was quantized
    with an importance matrix (``x-imatrix-Q4_K_M.gguf`` -> ``imatrix-Q4_K_M``)."""
    quant = quant_of(path)
    if quant is None:
        return None
    stem = Path(path).name.removesuffix(".gguf")
    return IMATRIX_PREFIX + quant if stem[: -len(quant)].lower().endswith("-" + IMATRIX_PREFIX) else quant


def preference(configured: Sequence[str] = ()) -> list[str]:
    """The order GGUFs are chosen in: the configured quant types (unquantized ones last), then
    the rest of ``GGUF_PREFERENCE``."""
    first = [q for q in configured if q not in UNQUANTIZED]
    return list(dict.fromkeys([*first, *GGUF_PREFERENCE]))


def choose_gguf(files: Iterable[Path], configured: Sequence[str] = ()) -> Path | None:
    """The GGUF a consumer should load (eval, chat, the dashboard's REPL) out of ``files``:
    by ``preference(configured)``, files of unknown quant after the known, ties by name."""
    ranked = order_ggufs(files, configured)
    return ranked[0] if ranked else None


def order_ggufs(files: Iterable[Path], configured: Sequence[str] = ()) -> list[Path]:
    """``files`` in the order ``choose_gguf`` would pick them; of two files of one quant type,
    the one quantized with an importance matrix first (it is the one export.imatrix asked for)."""
    order = preference(configured)
    return sorted(files, key=lambda p: (order.index(q) if (q := quant_of(p)) in order else len(order),
                                        label_of(p) != IMATRIX_PREFIX + str(q), p.name))
