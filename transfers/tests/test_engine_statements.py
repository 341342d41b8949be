"""The settle statement stays one psycopg keeps parsed: a statement longer
than its cache's limit is parsed again on every execute, on every transfer
(transfers/engine.py, SETTLE)."""

from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

from transfers import engine


def test_the_settle_statement_fits_psycopgs_parsed_statement_cache():
    assert len(engine.SETTLE.encode()) <= MAX_CACHED_STATEMENT_LENGTH


def test_collapsing_the_settle_statement_changes_no_literal():
    def literals(sql: str) -> list[str]:
        return sql.split("'")[1::2]

    assert literals(engine.SETTLE) == literals(engine.SETTLE_READABLE)
