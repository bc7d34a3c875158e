"""One-pass rendering: ids token-for-token equal to mistral-common's, labels masked right."""

from __future__ import annotations

import pytest

from r1tui.data.render import IGNORE_INDEX, RenderError, load_renderer
from r1tui.data.synthetic import generate_problems
from r1tui.response_format import format_assistant


def conv(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in turns]


THINK = format_assistant("Subtract 3 from both sides: 2x = 4.\nDivide by 2: x = 2.", "2")
CODE = "Here:\n```python\ndef f(xs):\n\tfor x in xs:\n        print(x)  # tab, then spaces\n```\n"
LONG = " ".join(f"word{i} façade {i * 7} 🎉" if i % 11 == 0 else f"token{i}" for i in range(6000))

CASES = {
    "single turn": conv(("user", "What is 2+2?"), ("assistant", "4")),
    "multi-turn": conv(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d"), ("user", "e"),
                       ("assistant", THINK)),
    "system prompt": conv(("system", "You are terse."), ("user", "q1"), ("assistant", "a1"), ("user", "q2"),
                          ("assistant", THINK)),
    "two system messages": conv(("system", "s1"), ("system", "s2"), ("user", "q"), ("assistant", "a")),
    "leading and trailing whitespace": conv(("user", "  padded  \n"), ("assistant", "\n  answer with spaces   "),
                                            ("user", "\tq"), ("assistant", "x \n ")),
    "double spaces": conv(("user", " hi  thére"), ("assistant", "a  b   c")),
    "accents": conv(("user", "Ça coûte 3 € — naïve façade, Ärger, señor"), ("assistant", "Très bien : déjà vu.")),
    "emoji": conv(("user", "🎉🚀 launch? 👍🏽"), ("assistant", "Yes 🚀🚀 — ✅")),
    "cjk": conv(("user", "日本語のテキスト"), ("assistant", "中文回答")),
    "code block": conv(("user", CODE), ("assistant", CODE + "Done.")),
    "long input": conv(("user", LONG), ("assistant", LONG[:5000])),
    "consecutive same-role": conv(("user", "a"), ("user", ""), ("user", "b"), ("assistant", "c"), ("assistant", "d ")),
    "starts with assistant": conv(("assistant", "hello"), ("user", "q"), ("assistant", "a")),
    "empty user": conv(("user", ""), ("assistant", "a")),
    "assistant only spaces": conv(("user", "q"), ("assistant", "   ")),
    "system in the middle": conv(("user", "q"), ("system", "late"), ("user", "q2"), ("assistant", "a")),
    "think format": conv(("user", "Solve 2x + 3 = 7"), ("assistant", THINK)),
}

# conversations mistral-common refuses in fine-tuning mode: we must refuse them too
INVALID = {
    "ends with user": conv(("user", "q"), ("assistant", "a"), ("user", "q2")),
    "empty assistant": conv(("user", "q"), ("assistant", ""), ("user", "q2"), ("assistant", "a")),
    "system after assistant": conv(("user", "q"), ("assistant", "a"), ("system", "s"), ("user", "q2"),
                                   ("assistant", "b")),
    "only an assistant": conv(("assistant", "a")),
}

SPECS = ["v3", "tekken", "v2", "v7", "tekken_v7", "tekken-v7", "tekken_v11"]


@pytest.fixture(params=SPECS)
def spec(request) -> str:
    folders = {"v2": "v2_folder", "v7": "v7_folder", "tekken_v7": "tekken_v7_folder",
               "tekken_v11": "tekken_v11_folder"}
    if request.param in folders:
        return str(request.getfixturevalue(folders[request.param]))
    return request.param


@pytest.mark.parametrize("case", list(CASES))
def test_ids_equal_mistral_common(spec, case, ref_ids):
    messages = CASES[case]
    rendered = load_renderer(spec).render(messages)
    assert rendered.input_ids == ref_ids(spec, messages)
    assert len(rendered.labels) == len(rendered.input_ids)


@pytest.mark.parametrize("case", list(INVALID))
def test_refuses_what_mistral_common_refuses(spec, case, ref_ids):
    messages = INVALID[case]
    with pytest.raises(Exception):  # noqa: B017 - mistral-common raises several types
        ref_ids(spec, messages)
    with pytest.raises(RenderError) as error:
        load_renderer(spec).render(messages)
    assert error.value.reason in ("bad_messages", "empty_answer")


def test_an_empty_assistant_message_merged_into_the_next_is_judged_as_mistral_common_does(spec, ref_ids):
    """v7 checks a run of assistant messages once merged (accepted), v3 each message (refused)."""
    messages = conv(("user", "q"), ("assistant", ""), ("assistant", "a"))
    try:
        expected = ref_ids(spec, messages)
    except Exception:  # noqa: BLE001 - mistral-common raises several types
        with pytest.raises(RenderError, match="no content"):
            load_renderer(spec).render(messages)
    else:
        assert load_renderer(spec).render(messages).input_ids == expected


@pytest.mark.parametrize("spec_name", ["v3", "tekken", "tekken-v7"])
def test_synthetic_rows_equal_mistral_common(spec_name, ref_ids):
    renderer = load_renderer(spec_name)
    conversations = [conv(("user", row["question"]), ("assistant", format_assistant(row["reasoning"], row["answer"])))
                     for row in generate_problems(45, seed=7)]
    for messages, rendered in zip(conversations, renderer.render_many(conversations), strict=True):
        assert rendered.input_ids == ref_ids(spec_name, messages)


@pytest.mark.parametrize("spec_name", ["v3", "tekken", "tekken-v7"])
def test_prompt_ids_equal_mistral_common(spec_name, ref_prompt_ids):
    renderer = load_renderer(spec_name)
    for messages in (conv(("user", " hi  thére")),
                     conv(("system", "Be brief."), ("user", "a"), ("assistant", "b"), ("user", "c 🎉"))):
        ids = renderer.render_prompt(messages)
        assert ids == ref_prompt_ids(spec_name, messages)
        assert ids[-1] == renderer.end_inst


def _expected_labels(spec, messages, ref_ids, ref_prompt_ids, train_on):
    """Labels derived from mistral-common alone: turn k's response is what the reference adds to
    the prompt ending at user turn k (no system prompt, so every prefix is a prefix)."""
    full = ref_ids(spec, messages)
    labels = [IGNORE_INDEX] * len(full)
    assistant_turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    for i in assistant_turns:
        if train_on == "last" and i != assistant_turns[-1]:
            continue
        start = len(ref_prompt_ids(spec, messages[:i]))
        end = len(ref_ids(spec, messages[: i + 1]))
        assert full[:end] == ref_ids(spec, messages[: i + 1])
        labels[start:end] = full[start:end]
    return labels


@pytest.mark.parametrize("spec_name", ["v3", "tekken", "tekken-v7"])
@pytest.mark.parametrize("train_on", ["all", "last"])
@pytest.mark.parametrize("case", ["multi-turn", "leading and trailing whitespace", "emoji", "code block"])
def test_labels_cover_exactly_the_responses(spec_name, train_on, case, ref_ids, ref_prompt_ids):
    messages = CASES[case]
    rendered = load_renderer(spec_name).render(messages, train_on=train_on)
    assert rendered.labels == _expected_labels(spec_name, messages, ref_ids, ref_prompt_ids, train_on)


@pytest.mark.parametrize("spec_name", ["v3", "tekken", "tekken-v7"])
@pytest.mark.parametrize("case", list(CASES))
def test_masking_invariants(spec_name, case):
    renderer = load_renderer(spec_name)
    rendered = renderer.render(CASES[case])
    ids, labels = rendered.input_ids, rendered.labels
    assert labels[0] == IGNORE_INDEX and ids[0] == renderer.bos_id
    for token_id, label in zip(ids, labels, strict=True):
        if token_id in (renderer.begin_inst, renderer.end_inst):
            assert label == IGNORE_INDEX  # every instruction marker masked
        if token_id == renderer.eos_id:
            assert label == token_id  # EOS trained (train_on="all")
        assert label in (IGNORE_INDEX, token_id)
    assert rendered.trained_tokens > 0  # never an all-masked row
    # every token between [INST] and [/INST] (the user text) is masked
    inside = False
    for token_id, label in zip(ids, labels, strict=True):
        if token_id == renderer.begin_inst:
            inside = True
        elif token_id == renderer.end_inst:
            inside = False
        elif inside:
            assert label == IGNORE_INDEX


@pytest.mark.parametrize("spec_name", ["v3", "tekken", "tekken-v7"])
def test_mask_think_trains_only_the_final_answer(spec_name):
    renderer = load_renderer(spec_name)
    messages = CASES["multi-turn"]
    plain = renderer.render(messages)
    masked = renderer.render(messages, mask_think=True)
    assert masked.input_ids == plain.input_ids  # masking never changes the ids
    last_end_inst = max(j for j, t in enumerate(plain.input_ids) if t == renderer.end_inst)
    trained = [i for i, label in enumerate(masked.labels) if label != IGNORE_INDEX]
    last_turn = [i for i in trained if i > last_end_inst]
    text = "".join(renderer.piece(masked.input_ids[i]) for i in last_turn[:-1])
    # Tekken has one token for ">\n\n": a token straddling </think> is trained
    assert text in ("\n\nFINAL ANSWER: 2", ">\n\nFINAL ANSWER: 2")
    assert masked.input_ids[last_turn[-1]] == renderer.eos_id
    # turns without a think block stay fully trained
    assert masked.labels[:last_end_inst] == plain.labels[:last_end_inst]
    assert masked.trained_tokens < plain.trained_tokens


def test_system_prompt_goes_before_the_last_user_message():
    renderer = load_renderer("v3")
    with_system = renderer.render(CASES["system prompt"]).input_ids
    text = "".join(renderer.piece(t) for t in with_system)
    assert text.index("You are terse.") > text.index("a1")
    assert "You are terse.\n\nq2" in text


def test_wrong_types_and_roles_are_refused_with_a_reason():
    renderer = load_renderer("v3")
    cases = {
        "wrong_type": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}],
        "bad_messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "a"}],
        "undecodable_text": [{"role": "user", "content": "bad \ud800"}, {"role": "assistant", "content": "a"}],
    }
    for reason, messages in cases.items():
        with pytest.raises(RenderError) as error:
            renderer.render(messages)
        assert error.value.reason == reason
    results = renderer.render_many([cases["wrong_type"], CASES["single turn"]])
    assert isinstance(results[0], RenderError) and results[1].input_ids


def test_unsupported_format_version_is_a_clear_error(tmp_path):
    import shutil

    from r1tui.data.tokenizer import tokenizer_file
    from r1tui.errors import R1Error

    shutil.copyfile(tokenizer_file("v3").parent / "tokenizer.model.v1", tmp_path / "tokenizer.model.v1")
    with pytest.raises(R1Error, match="instruct format v1"):
        load_renderer(str(tmp_path))


def test_hf_tokenizer_folder_renders_like_v3(v3_tokenizer_dir, ref_ids):
    """A folder written by save_hf_tokenizer (bare tokenizer.model) is the v3 tokenizer."""
    folder = str(v3_tokenizer_dir)
    messages = CASES["system prompt"]
    ids = load_renderer(folder).render(messages).input_ids
    assert ids == load_renderer("v3").render(messages).input_ids == ref_ids(folder, messages)


def test_tekken_v7_is_the_shipped_tekken_vocabulary_in_the_v7_format(ref_ids):
    """What r1tui derives for Mistral Small 3.x: tekken_240911.json's vocabulary and special
    tokens unchanged, version v7; [SYSTEM_PROMPT] / [/SYSTEM_PROMPT] at 17 / 18 as in the
    published 2501 / 2503 / 2506 tokenizers; the <s>[SYSTEM_PROMPT]…[/SYSTEM_PROMPT][INST]…
    [/INST]…</s> template of their model cards, as mistral-common encodes it."""
    import json

    from r1tui.data.tokenizer import load_text_tokenizer, tokenizer_file

    derived = json.loads(tokenizer_file("tekken-v7").read_text(encoding="utf-8"))
    shipped = json.loads(tokenizer_file("tekken").read_text(encoding="utf-8"))
    assert derived["config"] == {**shipped["config"], "version": "v7"}
    assert derived["vocab"] == shipped["vocab"] and "image" not in derived
    assert derived.get("special_tokens") == shipped.get("special_tokens")
    text = load_text_tokenizer("tekken-v7")
    assert (text.version, text.vocab_size) == ("v7", 131072)
    assert [text.control_id(name) for name in ("<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]",
                                               "[/SYSTEM_PROMPT]")] == [1, 2, 3, 4, 17, 18]
    messages = conv(("system", "S"), ("user", "Q"), ("assistant", "A"))
    ids = load_renderer("tekken-v7").render(messages).input_ids
    assert ids == ref_ids("tekken-v7", messages)
    assert ids[:2] == [1, 17] and ids[-1] == 2 and [3, 4, 18] == sorted({3, 4, 18} & set(ids))
    # the body text is Tekken's own: identical ids to the v3-format file for the same text
    assert text.encode("Ça coûte 3 € 🎉") == load_text_tokenizer("tekken").encode("Ça coûte 3 € 🎉")


# The ids mistral-common gives with the *released* Mistral-Small-3.1-24B-Instruct-2503 tekken.json
# (mistralai/mistral-common, scripts/provision_test_tokenizers.py pins it by SHA-256 as profile
# "v7-image"; tests/data/expected/chat-sample-weather-full-released-p7i/expected.json holds the
# ids): the first four messages of that conversation, and two answer texts further on.
RELEASED_2503_MESSAGES = conv(("system", "Don't make assumptions about what values to plug into functions."),
                              ("system", "Ask for clarification if a user request is ambiguous."),
                              ("user", "What's the weather like today"),
                              ("assistant", "Sure, can you please provide me with your location?"))
RELEASED_2503_IDS = [1, 17, 11874, 2405, 3180, 31215, 2314, 2549, 4213, 1317, 27148, 2203, 7389, 1046, 18, 17, 83665,
                     1394, 80697, 1693, 1261, 3330, 4546, 1395, 61103, 1046, 18, 3, 7493, 1681, 1278, 17253, 2479, 9406,
                     4, 69957, 1044, 1710, 1636, 10678, 5234, 1639, 1454, 2143, 7285, 1063, 2]
RELEASED_2503_TEXTS = {
    "The current temperature in Paris, France is 22 degrees Celsius.":
        [1784, 3519, 6138, 1294, 6993, 1044, 5498, 1395, 1032, 1050, 1050, 17633, 112399, 1046],
    "Please tell me the number of days you want the weather forecast for.":
        [17013, 5584, 1639, 1278, 2782, 1307, 5072, 1636, 2933, 1278, 17253, 52932, 1394, 1046],
}


def test_tekken_v7_gives_the_ids_of_the_released_mistral_small_3_1_tokenizer():
    from r1tui.data.tokenizer import load_text_tokenizer

    assert load_renderer("tekken-v7").render(RELEASED_2503_MESSAGES).input_ids == RELEASED_2503_IDS
    text = load_text_tokenizer("tekken-v7")
    for sentence, ids in RELEASED_2503_TEXTS.items():
        assert text.encode(sentence) == ids
