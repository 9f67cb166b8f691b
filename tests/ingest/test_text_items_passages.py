"""Passage splitting and document decoding (#18.1), with open_clip's real tokenizer (no model)."""

from __future__ import annotations

import itertools

import open_clip
import pytest

from retrieval.passages import split_passages
from retrieval.text_rows import decode_text, document_id, passage_id

TOKENIZER = open_clip.get_tokenizer("ViT-B-32")


def count(text: str) -> int:
    return len(TOKENIZER.encode(text))


def test_passages_fit_pack_whole_sentences_and_overlap_a_little() -> None:
    sentences = [f"Sentence number {n} says something short about boats." for n in range(30)]
    text = " ".join(sentences[:15]) + "\n\n" + " ".join(sentences[15:])
    passages = split_passages(text, count, 30, overlap=6)
    assert len(passages) > 5
    for passage in passages:
        assert count(passage.text) <= 30
        assert passage.text == " ".join(text[passage.start:passage.end].split())
    for before, after in itertools.pairwise(passages):
        assert before.end > after.start  # a small overlap ...
        shared = text[after.start:before.end]
        assert count(shared) <= 6  # ... of at most `overlap` tokens
        assert after.end > before.end  # and always progress
    # packed sentences end passages at a sentence end (the overlap starts mid-sentence)
    assert all(p.text.endswith(".") for p in passages)
    assert [p.index for p in passages] == list(range(len(passages)))
    assert passages[-1].end == len(text.rstrip())


def test_overlong_sentences_and_words_are_cut_to_fit() -> None:
    run_on = " ".join(f"word{n}" for n in range(200))  # one sentence, no punctuation
    blob = "x" * 3000  # one "word" far over the budget
    for text in (run_on, blob, f"{run_on} {blob}."):
        passages = split_passages(text, count, 20, overlap=4)
        assert all(count(p.text) <= 20 for p in passages)
        covered = set()
        for p in passages:
            covered.update(range(p.start, p.end))
        assert covered >= {i for i, ch in enumerate(text) if not ch.isspace()}
    pieces = split_passages(blob, count, 20)
    assert all(" " not in p.text for p in pieces)  # a cut word is not spaced apart


def test_the_byte_cap_holds_for_wide_characters() -> None:
    text = " ".join(["\u4e2d\u6587\u6587\u672c"] * 400)  # 12 bytes a word
    passages = split_passages(text, count, 10_000, max_bytes=200)
    assert passages and all(len(p.text.encode()) <= 200 for p in passages)


def test_empty_text_has_no_passages_and_a_budget_must_be_positive() -> None:
    assert split_passages("", count, 10) == []
    assert split_passages(" \n\t ", count, 10) == []
    with pytest.raises(ValueError):
        split_passages("text", count, 0)


def test_decoding_and_ids() -> None:
    assert decode_text("caf\u00e9".encode()) == ("caf\u00e9", "")
    assert decode_text(b"\xef\xbb\xbfhello") == ("hello", "")  # a byte-order mark is dropped
    text, note = decode_text(b"caf\xe9 au lait")
    assert text == "caf\ufffd au lait"
    assert "not valid UTF-8" in note and "offset 3" in note and "1 undecodable" in note
    doc = document_id("hello")
    assert doc == document_id("hello") != document_id("hello!")
    assert passage_id("a.txt", doc, 0) != passage_id("b.txt", doc, 0) != passage_id("a.txt", doc, 1)
