"""The OpenAI stream tracker: what it relays, the usage it finds and the text it keeps."""

import json

from spendplane.formats import OpenAIStreamTracker


def event(payload: dict, *, spaced: bool = False) -> bytes:
    text = json.dumps(payload) if spaced else json.dumps(payload, separators=(",", ":"))
    return b"data: " + text.encode() + b"\n\n"


def delta(content: str | None = None, **fields) -> dict:
    body = {"content": content} if content is not None else {}
    return {"id": "c1", "choices": [{"index": 0, "delta": {**body, **fields}}], "usage": None}


USAGE = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}


def test_content_chunks_pass_through_unchanged_and_the_text_is_kept_in_order():
    tracker = OpenAIStreamTracker(client_wants_usage=False)
    chunks = [
        event(delta("", role="assistant")),
        event(delta("Hello")),
        event(delta(' "usage": {"prompt_tokens": 9}'), spaced=True),  # looks like usage, inside a string
        event(delta(tool_calls=[{"index": 0, "function": {"arguments": '{"city":'}}])),
        event(delta(" world")),
    ]
    assert [tracker.relay(c) for c in chunks] == chunks
    assert tracker.saw_content
    assert tracker.usage is None
    assert tracker.text == 'Hello "usage": {"prompt_tokens": 9}{"city": world'


def test_the_first_chunk_with_an_empty_delta_is_not_content():
    tracker = OpenAIStreamTracker(client_wants_usage=False)
    tracker.relay(event(delta("", role="assistant")))
    assert not tracker.saw_content
    tracker.relay(event(delta("Hi")))
    assert tracker.saw_content


def test_usage_is_found_after_content_whatever_the_spacing():
    for spaced in (False, True):
        tracker = OpenAIStreamTracker(client_wants_usage=True)
        tracker.relay(event(delta("Hi")))
        usage_chunk = event({"id": "c1", "choices": [], "usage": USAGE}, spaced=spaced)
        assert tracker.relay(usage_chunk) == usage_chunk
        assert (tracker.usage.prompt_tokens, tracker.usage.completion_tokens) == (5, 7)
        assert tracker.relay(b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
        assert tracker.done


def test_a_client_that_did_not_ask_for_usage_does_not_get_it():
    tracker = OpenAIStreamTracker(client_wants_usage=False)
    tracker.relay(event(delta("Hi")))
    assert tracker.relay(event({"id": "c1", "choices": [], "usage": USAGE})) is None
    with_choices = tracker.relay(event({**delta("!"), "usage": USAGE}))
    assert json.loads(with_choices[len(b"data: ") :]) == {"id": "c1", "choices": delta("!")["choices"]}
    assert tracker.usage.completion_tokens == 7
    assert tracker.text == "Hi!"


def test_undecodable_chunks_are_relayed_and_left_out_of_the_text():
    tracker = OpenAIStreamTracker(client_wants_usage=False)
    tracker.relay(event(delta("Hi")))
    broken = b"data: {not json\n\n"
    assert tracker.relay(broken) == broken
    assert tracker.text == "Hi"
