"""Batching the prepared dataset: pad ids with a pad id and labels with -100, nothing else.

The labels column is already masked (-100 over the instruction tokens) by the data
stage; this collator keeps it exactly as given. v3 has no pad token, so padding uses
the EOS id under an attention mask of 0 and a label of -100: it is never attended
to and never learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


@dataclass
class PadCollator:
    pad_token_id: int
    label_pad_id: int = IGNORE_INDEX
    pad_to_multiple_of: int | None = None

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        import torch

        lengths = [len(row["input_ids"]) for row in rows]
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), self.label_pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, length) in enumerate(zip(rows, lengths, strict=True)):
            if len(row["labels"]) != length:
                raise ValueError(f"row {i}: {length} input_ids but {len(row['labels'])} labels")
            input_ids[i, :length] = torch.as_tensor(row["input_ids"], dtype=torch.long)
            labels[i, :length] = torch.as_tensor(row["labels"], dtype=torch.long)
            attention_mask[i, :length] = 1
        return {"input_ids": input_ids, "labels": labels, "attention_mask": attention_mask}
