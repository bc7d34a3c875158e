"""Render a conversation into ``input_ids`` and ``labels`` in one pass (Mistral instruct format).

The ids are built segment by segment exactly the way mistral-common's instruct
tokenizer builds them in fine-tuning mode (``encode_chat_completion``), and each
segment carries its own label rule, so ids and labels can never drift apart. Nothing
searches the token stream afterwards.

Mistral's format, v2/v3 (Mistral-Small-Instruct-2409, Tekken 240911)::

    <s>[INST] user[/INST] assistant</s>[INST] system\\n\\nlast user[/INST] assistant</s>

- consecutive messages of one role are merged with ``"\\n\\n"`` (empty ones skipped);
- the system prompt (all system messages joined by ``"\\n\\n"``) goes in front of the
  LAST user message;
- a conversation that does not start with a user turn gets an empty one first;
- each text is encoded on its own (SentencePiece adds its "▁" prefix itself); an
  assistant text loses trailing spaces (``rstrip(" ")``), nothing else is stripped.

v7 (Tekken of Mistral Small 3.x; v11, 3.2's, is the same for plain conversations) keeps
every system message in place as ``[SYSTEM_PROMPT]text[/SYSTEM_PROMPT]`` instead.

Labels: ``-100`` on BOS, ``[INST]``, every user/system text and ``[/INST]``; the token id
on every trained assistant token and its EOS. ``train_on="last"`` trains only the
final assistant turn; ``mask_think=True`` also masks the ``<think>…</think>`` block
(the boundary comes from the tokenizer's own byte offsets; a token that straddles it
is trained).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from r1tui.data.tokenizer import TextTokenizer, load_text_tokenizer
from r1tui.errors import R1Error
from r1tui.response_format import THINK_END

IGNORE_INDEX = -100
ROLES = ("system", "user", "assistant")
# Instruct formats whose plain-text chat rendering is implemented (and tested against mistral-common).
SYSTEM_BEFORE_LAST_USER = ("v2", "v3")
# v11 (Mistral Small 3.2's Tekken) changed only the tool-call format: a plain conversation
# encodes as in v7 (tests/data/test_render.py checks it against mistral-common's v11).
SYSTEM_IN_PLACE = ("v7", "v11")

TrainOn = Literal["all", "last"]


class RenderError(ValueError):
    """A conversation that cannot be rendered; ``reason`` is the short key it is counted under."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Rendered:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


# A planned segment: a control id, or a text to encode; `mode` is how it is labelled.
_MASKED, _TRAINED, _TRAINED_AFTER_THINK = 0, 1, 2


class ChatRenderer:
    """Renders conversations for one tokenizer. Get one with ``load_renderer(spec)``."""

    def __init__(self, text: TextTokenizer):
        if text.version not in SYSTEM_BEFORE_LAST_USER + SYSTEM_IN_PLACE:
            raise R1Error(
                f"tokenizer {text.spec!r} is instruct format {text.version}; r1tui renders "
                f"{', '.join(SYSTEM_BEFORE_LAST_USER + SYSTEM_IN_PLACE)} only: use v3, tekken or a model folder with one of those"
            )
        self.text = text
        self.spec = text.spec
        self.version = text.version
        self.bos_id = text.bos_id
        self.eos_id = text.eos_id
        self.begin_inst = text.control_id("[INST]")
        self.end_inst = text.control_id("[/INST]")
        self.system_in_place = text.version in SYSTEM_IN_PLACE
        if self.system_in_place:
            self.begin_system = text.control_id("[SYSTEM_PROMPT]")
            self.end_system = text.control_id("[/SYSTEM_PROMPT]")

    # -- public -------------------------------------------------------------------------
    def render(self, messages: Sequence[Mapping[str, str]], train_on: TrainOn = "all",
               mask_think: bool = False) -> Rendered:
        """Ids and labels of a conversation that ends with an assistant turn.

        Raises RenderError (with a ``reason``) for a conversation mistral-common would refuse.
        """
        result = self.render_many([messages], train_on=train_on, mask_think=mask_think)[0]
        if isinstance(result, RenderError):
            raise result
        return result

    def render_many(self, conversations: Sequence[Sequence[Mapping[str, str]]], train_on: TrainOn = "all",
                    mask_think: bool = False) -> list[Rendered | RenderError]:
        """Render many conversations with one batched encode call; errors are returned in place."""
        plans: list[list[tuple[int, int | str]] | RenderError] = []
        texts: list[str] = []
        for messages in conversations:
            try:
                plan = self._plan(messages, train_on, mask_think, for_training=True)
            except RenderError as exc:
                plans.append(exc)
                continue
            plans.append(plan)
            texts.extend(payload for mode, payload in plan if isinstance(payload, str) and mode != _TRAINED_AFTER_THINK)
        encoded = iter(self.text.encode_batch(texts))
        results: list[Rendered | RenderError] = []
        for plan in plans:
            if isinstance(plan, RenderError):
                results.append(plan)
                continue
            input_ids = [self.bos_id]
            labels = [IGNORE_INDEX]
            for mode, payload in plan:
                if isinstance(payload, int):
                    input_ids.append(payload)
                    labels.append(payload if mode == _TRAINED else IGNORE_INDEX)
                elif mode == _TRAINED_AFTER_THINK:
                    ids, labelled = self._mask_think(payload)
                    input_ids.extend(ids)
                    labels.extend(labelled)
                else:
                    ids = next(encoded)
                    input_ids.extend(ids)
                    labels.extend(ids if mode == _TRAINED else [IGNORE_INDEX] * len(ids))
            results.append(Rendered(input_ids, labels))
        return results

    def render_prompt(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """Ids of a prompt that ends with a user turn, ready for generation (ends with ``[/INST]``)."""
        plan = self._plan(messages, "all", False, for_training=False)
        texts = [payload for _, payload in plan if isinstance(payload, str)]
        encoded = iter(self.text.encode_batch(texts))
        ids = [self.bos_id]
        for _, payload in plan:
            ids.extend([payload] if isinstance(payload, int) else next(encoded))
        return ids

    def piece(self, token_id: int) -> str:
        return self.text.piece(token_id)

    def is_control(self, token_id: int) -> bool:
        return self.text.is_control(token_id)

    # -- the format ---------------------------------------------------------------------
    def _plan(self, messages: Sequence[Mapping[str, str]], train_on: TrainOn, mask_think: bool,
              for_training: bool) -> list[tuple[int, int | str]]:
        turns, system_prompt = self._normalize(messages, for_training)
        last_user = max((i for i, (role, _) in enumerate(turns) if role == "user"), default=-1)
        last_assistant = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=-1)
        plan: list[tuple[int, int | str]] = []
        for index, (role, content) in enumerate(turns):
            if role == "user":
                if index == last_user and system_prompt:
                    content = system_prompt + "\n\n" + content
                plan.append((_MASKED, self.begin_inst))
                if content:
                    plan.append((_MASKED, content))
                plan.append((_MASKED, self.end_inst))
            elif role == "system":
                plan.append((_MASKED, self.begin_system))
                if content:
                    plan.append((_MASKED, content))
                plan.append((_MASKED, self.end_system))
            else:
                trained = train_on == "all" or index == last_assistant
                content = content.rstrip(" ")
                if content:
                    if trained and mask_think and THINK_END in content:
                        plan.append((_TRAINED_AFTER_THINK, content))
                    else:
                        plan.append((_TRAINED if trained else _MASKED, content))
                plan.append((_TRAINED if trained else _MASKED, self.eos_id))
        return plan

    def _normalize(self, messages: Sequence[Mapping[str, str]],
                   for_training: bool) -> tuple[list[tuple[str, str]], str | None]:
        """mistral-common's validation and normalisation, for plain-text messages."""
        if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
            raise RenderError("bad_messages", "messages must be a non-empty list")
        groups: list[tuple[str, list[str]]] = []
        system_parts: list[str] = []
        previous_role = None
        for message in messages:
            if not isinstance(message, Mapping):
                raise RenderError("wrong_type", f"a message must be an object, got {type(message).__name__}")
            role, content = message.get("role"), message.get("content")
            if role not in ROLES:
                raise RenderError("bad_messages", f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
            if not isinstance(content, str):
                raise RenderError("wrong_type", f"{role} content must be a string, got {type(content).__name__}")
            _check_encodable(content)
            if role == "assistant" and not content and not self.system_in_place:
                raise RenderError("empty_answer", "an assistant message has no content")
            if previous_role == "assistant" and role == "system":
                raise RenderError("bad_messages", "a system message cannot follow an assistant message")
            if role == "system" and content:
                system_parts.append(content)
            if role != previous_role or (role == "system" and self.system_in_place):
                groups.append((role, []))
            groups[-1][1].append(content)
            previous_role = role
        if for_training and previous_role != "assistant":
            raise RenderError("bad_messages", f"the conversation must end with an assistant turn, not {previous_role}")
        if not for_training and previous_role != "user":
            raise RenderError("bad_messages", f"a prompt must end with a user turn, not {previous_role}")
        if len(messages) == 1 and previous_role == "assistant":
            raise RenderError("bad_messages", "the conversation must start with a user or system message")
        turns: list[tuple[str, str]] = []
        for role, parts in groups:
            if role == "system" and not self.system_in_place:
                continue
            turns.append((role, "\n\n".join(part for part in parts if part)))
            if role == "assistant" and not turns[-1][1]:  # v7 checks the merged run, v3 each message
                raise RenderError("empty_answer", "an assistant message has no content")
        if not turns or (not self.system_in_place and turns[0][0] != "user"):
            turns.insert(0, ("user", ""))
        system_prompt = None if self.system_in_place else ("\n\n".join(system_parts) or None)
        return turns, system_prompt

    def _mask_think(self, content: str) -> tuple[list[int], list[int]]:
        """Ids of an assistant text with the think block masked, from one encode call."""
        boundary = len(content[: content.index(THINK_END) + len(THINK_END)].encode("utf-8"))
        ids, ends = self.text.encode_with_byte_ends(content)
        labels = [token_id if end > boundary else IGNORE_INDEX for token_id, end in zip(ids, ends, strict=True)]
        return ids, labels


def _check_encodable(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RenderError("undecodable_text", "text holds characters that are not valid Unicode (lone surrogates)") from None


_RENDERERS: dict[str, ChatRenderer] = {}


def renders_system_in_place(spec: str) -> bool:
    """Whether the tokenizer's format keeps system messages in place (v7: [SYSTEM_PROMPT]…)."""
    return load_text_tokenizer(spec).version in SYSTEM_IN_PLACE


def load_renderer(spec: str) -> ChatRenderer:
    """The renderer for a tokenizer spec ("v3", "tekken" or a folder), built once per process."""
    renderer = _RENDERERS.get(spec)
    if renderer is None:
        renderer = _RENDERERS[spec] = ChatRenderer(load_text_tokenizer(spec))
    return renderer
