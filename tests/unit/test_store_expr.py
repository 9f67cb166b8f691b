"""Filter-expression building blocks: every value becomes one inert literal, never syntax."""

from __future__ import annotations

import json
import math
import random
import re
import unicodedata

import pytest

from retrieval.errors import ConfigError
from retrieval.stores import is_local_uri
from retrieval.stores.expr import (
    UnsafeLiteralError,
    field_ref,
    identifier,
    ids_in_expr,
    in_expr,
    literal,
    quote_string,
)

# Milvus's grammar (Plan.g4): a double-quoted literal is '"' (~["\\\r\n] | '\\' escape)* '"'.
STRING_TOKEN = re.compile(r'"(?:[^"\\\r\n]|\\.)*"', re.DOTALL)

HOSTILE = [
    "",
    '"',
    '""',
    "\\",
    "\\\\",
    '\\"',
    'say "hi"',
    '" or 1==1 or "',
    '" || true || "',
    '\\" or id != "',
    "') OR 1=1 --",
    "it's",
    'metadata["label"] == "dog"',
    "ünïcödé 狗 🐕 \u200b \u202e rtl",
    "%_like_%",
    "a" * 10_000,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_quote_string_is_one_token_that_decodes_back(value: str) -> None:
    quoted = quote_string(value)
    assert STRING_TOKEN.fullmatch(quoted), quoted
    assert json.loads(quoted) == value  # the escapes used are a subset of JSON's


def test_quote_string_escapes_backslash_before_quote() -> None:
    assert quote_string('a"b') == '"a\\"b"'
    assert quote_string("a\\b") == '"a\\\\b"'
    assert quote_string('\\"') == '"\\\\\\""'
    assert quote_string("ü") == '"ü"'


def test_quote_string_round_trips_random_unicode() -> None:
    rng = random.Random(1234)
    alphabet = ['"', "\\", "'", " ", "a", "=", "(", ")", "[", "]", "é", "狗", "🐕", "\u2028"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        quoted = quote_string(text)
        assert STRING_TOKEN.fullmatch(quoted) and json.loads(quoted) == text


@pytest.mark.parametrize(
    "value", ["nul\x00", "line\nbreak", "cr\r", "tab\t", "del\x7f", "c1\x85", "lone \ud800"]
)
def test_quote_string_rejects_control_characters_and_surrogates(value: str) -> None:
    with pytest.raises(UnsafeLiteralError):
        quote_string(value)


@pytest.mark.parametrize("value", [None, b"bytes", 1, ["a"]])
def test_quote_string_rejects_non_strings(value: object) -> None:
    with pytest.raises(UnsafeLiteralError):
        quote_string(value)  # type: ignore[arg-type]


def test_unsafe_literal_error_is_a_config_and_value_error() -> None:
    assert issubclass(UnsafeLiteralError, ConfigError)
    assert issubclass(UnsafeLiteralError, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-5, "-5"),
        (2**63 - 1, "9223372036854775807"),
        (-(2**63), "-9223372036854775808"),
        (1.5, "1.5"),
        (-0.25, "-0.25"),
        (1e-7, "1e-07"),
        (3.0, "3.0"),
        ("dog", '"dog"'),
    ],
)
def test_literal(value: str | int | float | bool, expected: str) -> None:
    assert literal(value) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 2**63, -(2**63) - 1])
def test_literal_rejects_non_finite_and_out_of_range_numbers(value: float) -> None:
    with pytest.raises(UnsafeLiteralError):
        literal(value)


@pytest.mark.parametrize("value", [None, b"x", [1], {"a": 1}, 1j, object()])
def test_literal_rejects_other_types(value: object) -> None:
    with pytest.raises(UnsafeLiteralError):
        literal(value)  # type: ignore[arg-type]


def test_ids_in_expr_quotes_every_id() -> None:
    assert ids_in_expr(["a", "b"]) == 'id in ["a", "b"]'
    expr = ids_in_expr(['" or 1==1 or "', "x\\"])
    assert expr == 'id in ["\\" or 1==1 or \\"", "x\\\\"]'
    inner = expr[len("id in [") : -1]
    tokens = STRING_TOKEN.findall(inner)
    assert [json.loads(t) for t in tokens] == ['" or 1==1 or "', "x\\"]
    assert ids_in_expr(("z",), field="pk") == 'pk in ["z"]'


@pytest.mark.parametrize("ids", [[], [1], ["ok", None], ["bad\x00"]])
def test_ids_in_expr_refuses_empty_or_non_string_ids(ids: list[object]) -> None:
    with pytest.raises(UnsafeLiteralError):
        ids_in_expr(ids)  # type: ignore[arg-type]


def test_in_expr_mixes_literals() -> None:
    assert in_expr("n", [1, 2.5, "x", True]) == 'n in [1, 2.5, "x", true]'


def test_field_ref_quotes_json_keys() -> None:
    assert field_ref("metadata") == "metadata"
    assert field_ref("metadata", "label") == 'metadata["label"]'
    assert field_ref("metadata", "a", 0, 'k"]') == 'metadata["a"][0]["k\\"]"]'


@pytest.mark.parametrize("name", ["", "1abc", "meta data", 'x"]', "a.b", "é", "id or 1"])
def test_identifier_refuses_anything_but_plain_names(name: str) -> None:
    with pytest.raises(UnsafeLiteralError):
        identifier(name)


@pytest.mark.parametrize("key", [-1, True, 1.5, None])
def test_field_ref_refuses_bad_keys(key: object) -> None:
    with pytest.raises(UnsafeLiteralError):
        field_ref("metadata", key)  # type: ignore[arg-type]


def test_every_control_character_is_refused() -> None:
    controls = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) == "Cc"]
    assert len(controls) == 65
    for ch in controls:
        with pytest.raises(UnsafeLiteralError):
            quote_string(f"a{ch}b")


def test_is_local_uri() -> None:
    assert is_local_uri("./mmrag.db")
    assert is_local_uri("/var/lib/mmrag/x.db")
    assert is_local_uri("C:/data/x.db")
    for uri in ("http://localhost:19530", "https://h:443", "HTTP://H", "tcp://h:1", "unix:/s"):
        assert not is_local_uri(uri)
