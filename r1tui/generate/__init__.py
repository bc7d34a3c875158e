"""Distillation from a teacher: generate, verify, curate and write reasoning traces.

The contract of the package, one module per step:

- ``teacher``: a pool of OpenAI-compatible chat-completions endpoints (``teacher.base_url``,
  one or several) used at once, the least loaded first; the ``openai`` client's own
  retries, backoff and Retry-After. One call is one completion, returned as a typed
  ``TeacherReply`` or a typed ``TeacherFailure`` with a short reason (never an exception).
  The API key comes from the variable ``teacher.api_key_env`` and is never written anywhere.
- ``failures``: which failed calls are the transport's (connection, timeout, 408/409/429/5xx):
  moved once to another endpoint, and asked again by the next run, never a verdict.
- ``normalize``: a teacher's reply (reasoning inline in ``<think>…</think>`` or in a
  separate ``reasoning_content`` field; the answer on a FINAL ANSWER line or in
  ``\\boxed{}``) → r1tui's training format (``r1tui.response_format.format_assistant``),
  or a reason why it cannot be (``bad_format``, ``no_answer``, ``empty``).
- ``verify``: is a normalized sample right (the reference answer, by the domain's rule),
  complete and short enough for the student; ``select``: which of a prompt's correct
  samples are kept (duplicates and near duplicates out, ``teacher.keep``).
- ``run``: ``generate_traces`` — prompts from any data source, ``teacher.samples`` per
  prompt, ``teacher.concurrency`` at once; every finished sample is appended to the
  samples file as it arrives and the kept conversations to the traces file, in the
  schema ``r1tui prepare --data`` reads. Prompts that overlap an eval set are never sent.
  Rerunning the same command after a kill continues where it stopped and never writes a
  row twice; ``plan_generation`` is the dry run the CLI and the dashboard share.
- ``rows``, ``decontaminate``, ``curate``: reading any data source row by row, dropping
  training prompts that overlap the eval sets, and curating a traces file.

A stage package: it imports the run contract (``r1tui.runs``, config, errors,
response_format) and the data and eval stages, never the orchestrator, CLI or dashboard.
This file imports nothing, so ``r1tui.generate.verify`` loads without the HTTP client.
"""
