"""Export and publish: merge the adapter, convert to GGUF, quantize, check tokenizer parity,
write an Ollama Modelfile and a model card, push to the Hugging Face Hub.

- ``stages``   the four stages the orchestrator runs as the step ``export`` (merge → gguf →
               quantize → parity, then export.json, the Modelfile and the card), and
               ``export_result(layout)``: what a run's export holds, as an ``ExportResult``
- ``merge``, ``gguf``, ``parity``, ``modelfile``, ``card``  the work itself, on plain paths
- ``push``     ``plan_push(config, run) -> PushPlan`` and ``push_run(...)``
- ``parity.check_parity(gguf, tokenizer_spec)`` for any GGUF / tokenizer pair

``r1tui export RUN`` runs the step through ``r1tui.pipeline.orchestrator.run_named``.
Nothing here imports torch, transformers or llama_cpp at module scope, nor the
orchestrator, the CLI or the dashboard.
"""
