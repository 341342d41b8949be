"""The settle statements stay ones psycopg keeps parsed: a statement longer
than its cache's limit is parsed again on every execute, on every transfer
(transfers/engine.py, SETTLE and SETTLE_MANY). And compacting them
(engine._compact) changes none of their tokens."""

import pytest
from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH
from sqlparse import lexer, tokens

from transfers import engine

# Each statement sent, with the text it is compacted from.
STATEMENTS = [
    pytest.param(engine.SETTLE, engine.settle_readable(engine.WALLETS_OF_A_PAIR), id="SETTLE"),
    pytest.param(engine.SETTLE_MANY, engine.settle_readable(engine.WALLETS_OF_MANY), id="SETTLE_MANY"),
]


@pytest.mark.parametrize(("sent", "readable"), STATEMENTS)
def test_the_settle_statement_fits_psycopgs_parsed_statement_cache(sent, readable):
    assert len(sent.encode()) <= MAX_CACHED_STATEMENT_LENGTH


@pytest.mark.parametrize(("sent", "readable"), STATEMENTS)
def test_collapsing_the_settle_statement_changes_no_literal(sent, readable):
    def literals(sql: str) -> list[str]:
        return sql.split("'")[1::2]

    assert literals(sent) == literals(readable)


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


@pytest.mark.parametrize(("sent", "readable"), STATEMENTS)
def test_the_settle_statement_sent_reads_as_the_same_tokens_as_the_readable_one(sent, readable):
    assert sql_tokens(sent) == sql_tokens(readable)


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
