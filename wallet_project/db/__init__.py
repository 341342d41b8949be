"""The PostgreSQL backend (base.py), and helpers for code that runs plain SQL
and builds model instances from the rows."""

import functools

from django.db.models.base import ModelState
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.signals import post_init, pre_init


def in_model_order(model, names) -> list[str]:
    """The primary key and `names`, as the attnames Model.from_db expects for a
    row whose columns come in the model's field order (as .only() selects them)."""
    wanted = {model._meta.pk.attname, *names}
    return [f.attname for f in model._meta.concrete_fields if f.attname in wanted]


def from_row(model, alias: str, names, row):
    """A `model` instance of a row read by plain SQL: `names` (attnames, as
    in_model_order gives them) and the row's values in the same order, the
    other fields deferred. What Model.from_db(alias, names, row) returns,
    built directly: from_db spreads the row over every concrete field (a
    placeholder for each one not read), and Model.__init__ walks them all
    again and sends pre_init and post_init, about 140 us of CPU for a log
    row. A transfer builds five instances (its log twice, its two wallets,
    the client's user): this took 8 % of a transfer's instructions and 2 %
    of a replay's (bench/HISTORY.md, "2026-12-06 09:30"). Falls back to
    from_db for a model whose fields Model.__init__ would set through a
    descriptor of their own, and while anything listens to pre_init or
    post_init."""
    if pre_init.receivers or post_init.receivers or not _sets_plainly(model):
        return model.from_db(alias, names, row)
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = False, alias
    instance.__dict__.update(zip(names, row, strict=True))
    return instance


@functools.cache
def _sets_plainly(model) -> bool:
    """Whether Model.__init__ sets each concrete field of `model` as a plain
    instance attribute: a field's attribute on the class is Django's
    non-data DeferredAttribute, or a foreign key's id, whose __set__ only
    clears a related object a new instance does not have yet."""
    for field in model._meta.concrete_fields:
        descriptor = model.__dict__.get(field.attname) or getattr(model, field.attname, None)
        if hasattr(descriptor, "__set__") and not isinstance(descriptor, ForeignKeyDeferredAttribute):
            return False
    return True


def statement_cursor(connection):
    """A cursor for one statement whose rows are all read before the next
    runs, not closed by the caller (use it without `with`).

    On this project's backend (wallet_project/db/base.py) one psycopg cursor
    reused for the connection's lifetime; on any other (Django's stock
    PostgreSQL backend) a new cursor(), which works the same, slower: with
    a new cursor() every time, a transfer cost 2.9 % more instructions
    (5.83M -> 6.00M) and a replay 3.9 % more (2.86M -> 2.97M; callgrind,
    bench/HISTORY.md, "2026-12-06 09:30"), above the 2 % a fast path must
    earn to stay. transfers/tests/test_stock_backend.py runs the money path
    on the stock backend.
    """
    reused = getattr(connection, "statement_cursor", None)
    return reused() if reused is not None else connection.cursor()


def fetch(connection, statement: str, params) -> list[tuple]:
    """The rows of a statement that returns some (SELECT, RETURNING)."""
    cursor = statement_cursor(connection)
    cursor.execute(statement, params)
    return cursor.fetchall()


def run(connection, statement: str, params) -> None:
    """A statement that returns no rows. Kept apart from fetch because asking
    the cursor whether there are rows (its description) builds a column object
    per column: measurable on a path that runs on every request."""
    statement_cursor(connection).execute(statement, params)
