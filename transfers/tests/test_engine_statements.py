"""The settle statement stays one psycopg keeps parsed: a statement longer
than its cache's limit is parsed again on every execute, on every transfer
(transfers/engine.py, SETTLE). And compacting it (engine._compact) changes
none of its tokens."""

import pytest
from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH
from sqlparse import lexer, tokens

from transfers import engine


def test_the_settle_statement_fits_psycopgs_parsed_statement_cache():
    assert len(engine.SETTLE.encode()) <= MAX_CACHED_STATEMENT_LENGTH


def test_collapsing_the_settle_statement_changes_no_literal():
    def literals(sql: str) -> list[str]:
        return sql.split("'")[1::2]

    assert literals(engine.SETTLE) == literals(engine.SETTLE_READABLE)


def sql_tokens(sql: str) -> list[str]:
    """`sql`'s tokens without its whitespace, as PostgreSQL reads them where
    _compact could change them: a comment runs to the end of its line, and
    operator characters with no space between read as one operator (the
    lexer's longest match, so `= @` and `=@` differ)."""
    read: list[str] = []
    after_operator = False
    for kind, text in lexer.tokenize(sql):
        if kind in tokens.Whitespace:
            after_operator = False
            continue
        operator = kind in tokens.Operator
        if operator and after_operator:
            read[-1] += text
        else:
            read.append(text)
        after_operator = operator
    return read


def test_the_settle_statement_sent_reads_as_the_same_tokens_as_the_readable_one():
    assert sql_tokens(engine.SETTLE) == sql_tokens(engine.SETTLE_READABLE)


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("SELECT 1 -- a comment\nFROM t", id="a-comment-swallows-the-rest"),
        pytest.param(r"SELECT E'it\'s' , 'a , b'", id="a-quote-escaped-in-a-literal"),
        pytest.param('SELECT "a, b" FROM t', id="a-quoted-identifier"),
        pytest.param("SELECT a = @b", id="two-operators-glued"),
    ],
)
def test_the_token_check_catches_what_compacting_would_break(sql):
    """What _compact assumes away (its docstring), each written once in a
    statement: the check above would fail on it."""
    assert sql_tokens(engine._compact(sql)) != sql_tokens(sql)
