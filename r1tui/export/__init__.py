"""Export and publish: merge the adapter, convert to GGUF, quantize, check tokenizer parity,
write an Ollama Modelfile and a model card, push to the Hugging Face Hub.

- ``export_run(config, run_dir, events=None, quant_types=None) -> dict`` runs
  merge -> gguf -> quantize -> parity -> Modelfile + card (``r1tui.export.pipeline``).
- ``r1tui.export.push.push_run(config, run_dir, events=None, dry_run=False) -> dict``.
- ``r1tui.export.parity.check_parity(gguf, tokenizer_spec)`` for any GGUF / tokenizer pair.

Nothing here imports torch, transformers or llama_cpp at module scope.
"""

from __future__ import annotations

from typing import Any

__all__ = ["export_run"]


def export_run(config, run_dir, events=None, quant_types: list[str] | None = None) -> dict[str, Any]:
    """See r1tui.export.pipeline.export_run."""
    from r1tui.export.pipeline import export_run as _export_run

    return _export_run(config, run_dir, events=events, quant_types=quant_types)
