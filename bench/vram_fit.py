"""The calculator's fitted VRAM constants, derived again from the recorded GPU peaks.

    python bench/vram_fit.py [bench/results/gpu_vram_h100.json]

Prints, per backend, the checkpoint bytes per hidden element and the loss-side bytes per
token x vocab entry that ``r1tui.calculator.fit_vram_constants`` gets from the
measurements, the values the calculator uses, and the estimate against each peak.
No GPU needed: it reads the results bench/gpu_vram.py wrote.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from r1tui import calculator
from r1tui.config import LORA_TARGET_MODULES

RESULTS = Path(__file__).parent / "results" / "gpu_vram_h100.json"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS
    recorded = json.loads(path.read_text(encoding="utf-8"))
    rows = recorded["results"]
    print(f"{path} ({recorded.get('gpu', 'GPU not named')})")
    for backend, (checkpoint, logits) in calculator.fit_vram_constants(rows, LORA_TARGET_MODULES).items():
        print(f"{backend:8} fitted: checkpoint {checkpoint:.4f} B/hidden, loss side {logits:.4f} B/token/vocab; "
              f"calculator: {calculator.CHECKPOINT_BYTES_PER_HIDDEN[backend]}, {calculator.LOGIT_BYTES[backend]}")
    shape = calculator.PRESETS["mistral-small-2409"]
    for row in rows:
        estimate = calculator.estimate_training_vram(
            replace(shape, num_hidden_layers=row["layers"]), rank=64, target_modules=LORA_TARGET_MODULES,
            seq_len=row["seq"], batch_size=1, gpu_memory_gb=80, backend=row["backend"])
        error = (estimate.allocated - row["peak_allocated"]) / row["peak_allocated"]
        print(f"{row['backend']:8} {row['layers']} layers, seq {row['seq']}: measured {row['peak_allocated'] / 1e9:.3f} GB, "
              f"estimate {estimate.allocated / 1e9:.3f} GB ({100 * error:+.3f} %)")


if __name__ == "__main__":
    main()
