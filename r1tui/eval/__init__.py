"""Evaluation: answer accuracy, reasoning quality and format compliance of a model.

``evaluate_run(config, run_dir, events=None, gguf=None) -> dict`` is the pipeline's
eval stage. The pieces are usable alone: ``ReasoningQualityEvaluator`` (steps and
depth), ``extract_answer`` / ``check_answer`` (correctness), ``load_eval_set``.
Nothing here imports torch, transformers or llama_cpp at module scope.
"""

from r1tui.eval.answers import check_answer
from r1tui.eval.evaluator import ReasoningQualityEvaluator, format_summary
from r1tui.eval.run import (
    compare_results,
    evaluate_model,
    evaluate_run,
    find_run_gguf,
    load_results,
)
from r1tui.eval.sets import load_eval_set
from r1tui.response_format import extract_answer, split_response

__all__ = [
    "ReasoningQualityEvaluator", "check_answer", "compare_results", "evaluate_model", "evaluate_run",
    "extract_answer", "find_run_gguf", "format_summary", "load_eval_set", "load_results", "split_response",
]
