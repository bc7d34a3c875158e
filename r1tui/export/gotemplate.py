"""Go's text/template, the part an Ollama Modelfile's TEMPLATE uses, rendered in Python.

Ollama renders a chat with ``text/template`` over ``{"System": ..., "Messages": [...]}``
after ``collate`` (template/template.go): every system message's content joined with a
blank line becomes ``.System``, and consecutive messages of one role are merged with a
blank line (system messages stay in ``.Messages`` too). ``ollama_render`` does the same,
so parity can check the Modelfile's template without Ollama.

Supported: text; ``{{- ... -}}`` trim markers; ``if`` / ``else if`` / ``else`` / ``end``;
``range [$i, $v :=] PIPE`` (with ``else``); printing a pipeline. Operands: ``.``,
``.Field``, ``$``, ``$var``, ``$.Field``, strings, integers, ``true``/``false``,
parentheses. Functions: ``eq ne lt le gt ge and or not len slice index``. Anything else
raises ``R1Error`` in one line: the check must never guess at a template it cannot read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from r1tui.errors import R1Error

_TOKEN = re.compile(r'\s*(\(|\)|"(?:\\.|[^"\\])*"|`[^`]*`|:=|,|\||\$[\w]*(?:\.\w+)*|\.(?:\w+(?:\.\w+)*)?|-?\d+|\w+)')
_TRIM = " \t\r\n"


@dataclass
class _Node:
    kind: str  # "text", "print", "if", "range"
    text: str = ""
    pipe: list[str] = field(default_factory=list)
    branches: list[tuple[list[str], list[_Node]]] = field(default_factory=list)  # if: (condition, body)
    body: list[_Node] = field(default_factory=list)  # range
    otherwise: list[_Node] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # range variables


def _lex(source: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", body) pieces, with trim markers applied."""
    pieces: list[tuple[str, str]] = []
    position = 0
    while True:
        start = source.find("{{", position)
        if start < 0:
            pieces.append(("text", source[position:]))
            break
        end = source.find("}}", start)
        if end < 0:
            raise R1Error("Go template: '{{' without a closing '}}'")
        text, body = source[position:start], source[start + 2:end]
        if body[:1] == "-" and body[1:2] in tuple(_TRIM):
            text, body = text.rstrip(_TRIM), body[1:]
        pieces.append(("text", text))
        trim_next = body[-1:] == "-" and body[-2:-1] in tuple(_TRIM)
        pieces.append(("action", (body[:-1] if trim_next else body).strip()))
        position = end + 2
        if trim_next:
            while position < len(source) and source[position] in _TRIM:
                position += 1
    return [piece for piece in pieces if piece != ("text", "")]


def _words(body: str) -> list[str]:
    words, position = [], 0
    while position < len(body):
        match = _TOKEN.match(body, position)
        if not match or not match.group(1):
            if body[position:].strip():
                raise R1Error(f"Go template: cannot read {body[position:].strip()!r}")
            break
        words.append(match.group(1))
        position = match.end()
    return words


def parse(source: str) -> list[_Node]:
    pieces = _lex(source)
    nodes, index = _parse_list(pieces, 0, top=True)
    return nodes


def _parse_list(pieces, index: int, top: bool = False) -> tuple[list[_Node], int]:
    nodes: list[_Node] = []
    while index < len(pieces):
        kind, value = pieces[index]
        if kind == "text":
            nodes.append(_Node("text", text=value))
            index += 1
            continue
        if value.startswith("/*"):
            index += 1
            continue
        words = _words(value)
        head = words[0] if words else ""
        if head in ("end", "else"):
            if top:
                raise R1Error(f"Go template: unexpected {{{{ {value} }}}}")
            return nodes, index
        if head == "if":
            node = _Node("if")
            condition = words[1:]
            index += 1
            while True:
                body, index = _parse_list(pieces, index)
                node.branches.append((condition, body))
                closing = _words(pieces[index][1]) if index < len(pieces) else []
                if closing[:2] == ["else", "if"]:
                    condition, index = closing[2:], index + 1
                    continue
                if closing == ["else"]:
                    node.otherwise, index = _parse_list(pieces, index + 1)
                    closing = _words(pieces[index][1]) if index < len(pieces) else []
                if closing != ["end"]:
                    raise R1Error("Go template: {{ if }} without {{ end }}")
                index += 1
                break
            nodes.append(node)
        elif head == "range":
            node = _Node("range")
            rest = words[1:]
            if ":=" in rest:
                split = rest.index(":=")
                node.names = [w for w in rest[:split] if w != ","]
                rest = rest[split + 1:]
            node.pipe = rest
            node.body, index = _parse_list(pieces, index + 1)
            closing = _words(pieces[index][1]) if index < len(pieces) else []
            if closing == ["else"]:
                node.otherwise, index = _parse_list(pieces, index + 1)
                closing = _words(pieces[index][1]) if index < len(pieces) else []
            if closing != ["end"]:
                raise R1Error("Go template: {{ range }} without {{ end }}")
            nodes.append(node)
            index += 1
        elif head in ("with", "define", "template", "block", "break", "continue") or ":=" in words or "=" in words:
            raise R1Error(f"Go template: {{{{ {value} }}}} is not supported by this checker")
        else:
            nodes.append(_Node("print", pipe=words))
            index += 1
    if not top:
        raise R1Error("Go template: a block without {{ end }}")
    return nodes, index


# ---------------------------------------------------------------- evaluation


def _truth(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (isinstance(value, (list, dict)) and not value)


def _field(value: Any, names: list[str]) -> Any:
    for name in names:
        value = value.get(name, "") if isinstance(value, dict) else getattr(value, name, "")
    return value


_FUNCTIONS = {
    "eq": lambda a, *rest: any(a == b for b in rest),
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda a: not _truth(a),
    "len": len,
    "slice": lambda x, *bounds: x[bounds[0]:bounds[1]] if len(bounds) == 2 else x[bounds[0] if bounds else 0:],
    "index": lambda x, *keys: _index(x, keys),
}


def _index(value: Any, keys: tuple) -> Any:
    for key in keys:
        value = value[key]
    return value


class _Scope:
    def __init__(self, root: Any):
        self.root = root
        self.variables: dict[str, Any] = {"$": root}


def _operand(word: str, dot: Any, scope: _Scope) -> Any:
    if word.startswith('"'):
        return json.loads(word)
    if word.startswith("`"):
        return word[1:-1]
    if word in ("true", "false"):
        return word == "true"
    if re.fullmatch(r"-?\d+", word):
        return int(word)
    if word == ".":
        return dot
    if word.startswith("."):
        return _field(dot, word[1:].split("."))
    if word.startswith("$"):
        name, *names = word.split(".")
        if name not in scope.variables:
            raise R1Error(f"Go template: undefined variable {name}")
        return _field(scope.variables[name], names)
    raise R1Error(f"Go template: unknown function or value {word!r}")


def _evaluate(words: list[str], dot: Any, scope: _Scope) -> Any:
    if "|" in words:
        raise R1Error("Go template: pipes ('|') are not supported by this checker")
    args: list[Any] = []
    position = 0
    while position < len(words):  # resolve parenthesised sub-pipelines first
        word = words[position]
        if word == "(":
            depth, end = 1, position + 1
            while depth:
                if end >= len(words):
                    raise R1Error("Go template: unbalanced parentheses")
                depth += {"(": 1, ")": -1}.get(words[end], 0)
                end += 1
            args.append(("value", _evaluate(words[position + 1:end - 1], dot, scope)))
            position = end
        else:
            args.append(("word", word))
            position += 1
    head = args[0]
    if head[0] == "word" and head[1] in ("and", "or"):
        result = None
        for kind, value in args[1:]:  # short-circuit, returning the deciding value (Go 1.18)
            result = value if kind == "value" else _operand(value, dot, scope)
            if _truth(result) != (head[1] == "and"):
                return result
        return result
    if head[0] == "word" and head[1] in _FUNCTIONS:
        values = [value if kind == "value" else _operand(value, dot, scope) for kind, value in args[1:]]
        return _FUNCTIONS[head[1]](*values)
    if len(args) > 1:
        raise R1Error(f"Go template: {' '.join(words)!r} is not a function call this checker knows")
    return head[1] if head[0] == "value" else _operand(head[1], dot, scope)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _run(nodes: list[_Node], dot: Any, scope: _Scope, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.text)
        elif node.kind == "print":
            out.append(_text(_evaluate(node.pipe, dot, scope)))
        elif node.kind == "if":
            for condition, body in node.branches:
                if _truth(_evaluate(condition, dot, scope)):
                    _run(body, dot, scope, out)
                    break
            else:
                _run(node.otherwise, dot, scope, out)
        elif node.kind == "range":
            items = _evaluate(node.pipe, dot, scope)
            pairs = list(items.items()) if isinstance(items, dict) else list(enumerate(items or []))
            if not pairs:
                _run(node.otherwise, dot, scope, out)
            saved = dict(scope.variables)
            for key, item in pairs:
                if len(node.names) == 1:
                    scope.variables[node.names[0]] = item
                elif len(node.names) == 2:
                    scope.variables[node.names[0]], scope.variables[node.names[1]] = key, item
                _run(node.body, item, scope, out)
            scope.variables = saved


def render(source: str, data: dict[str, Any]) -> str:
    """The text Go's text/template writes for ``source`` over ``data``."""
    out: list[str] = []
    _run(parse(source), data, _Scope(data), out)
    return "".join(out)


def ollama_messages(messages: list[dict[str, str]], default_system: str = "") -> list[dict[str, str]]:
    """The messages Ollama's chat handler renders: the Modelfile's SYSTEM goes in front when
    the request does not start with a system message."""
    if default_system and (not messages or messages[0]["role"] != "system"):
        return [{"role": "system", "content": default_system}, *messages]
    return list(messages)


def ollama_render(template: str, messages: list[dict[str, str]]) -> str:
    """A chat rendered as Ollama renders it: ``collate`` then the template over
    ``{"System", "Messages"}`` (message fields ``Role`` and ``Content``)."""
    system, collated = [], []
    for message in messages:
        if message["role"] == "system":
            system.append(message["content"])
        if collated and collated[-1]["Role"] == message["role"] and message["role"] != "tool":
            collated[-1]["Content"] += "\n\n" + message["content"]
        else:
            collated.append({"Role": message["role"], "Content": message["content"]})
    return render(template, {"System": "\n\n".join(system), "Messages": collated, "Tools": [], "Response": ""})
