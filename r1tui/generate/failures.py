"""Which failed teacher calls are the transport's fault, not the sample's.

A call that never got an answer because the server was down, slow, overloaded or a
replica died says nothing about the prompt: ``teacher_connection`` (refused, cut
mid-body), ``teacher_timeout`` and ``teacher_http_<status>`` for 408, 409, 429 and 5xx —
the statuses the ``openai`` client itself retries. Such a sample is asked again: once on
another endpoint within the call (``TeacherPool.complete`` when there are several), and
by the next run over the same files (``r1tui.generate.run``: it is not "done").

Everything else is final: a 4xx such as 400, 401, 403 or 404 (the server refused this
request; asking again gets the same answer), a reply that is not a completion
(``teacher_bad_response``, ``teacher_no_choices``) and the verdicts themselves.

No imports: ``r1tui.generate.run`` and the dry-run plan read this without the HTTP client.
"""

from __future__ import annotations

TRANSPORT_REASONS = frozenset({"teacher_connection", "teacher_timeout"})
RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx
_HTTP = "teacher_http_"


def is_transport_failure(reason: object) -> bool:
    """True for a failure that is asked again (see the module docstring)."""
    if not isinstance(reason, str):
        return False
    if reason in TRANSPORT_REASONS:
        return True
    if reason.startswith(_HTTP) and reason[len(_HTTP):].isdigit():
        status = int(reason[len(_HTTP):])
        return status in RETRYABLE_STATUS or 500 <= status <= 599
    return False
