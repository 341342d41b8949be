"""The body's nesting bound (JSON_MAX_DEPTH, wallet_project/policies.py) read
from the brackets of the text: the same depth the document walk counts, so a
batch of many payouts, many brackets but three levels deep, is not walked."""

import json
import random

import pytest
from django.conf import settings

from wallet_project import policies
from wallet_project.policies import Refused, decode_json


def document_depth(value) -> int:
    """The nesting depth as policies._check counts it: the document at 1."""
    if isinstance(value, dict):
        return 1 + max((document_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((document_depth(item) for item in value), default=0)
    return 0


def random_document(rng: random.Random, levels: int):
    """A document of objects and lists nested at most `levels` deep, with
    strings that hold brackets and escaped quotes (which the depth must not count)."""
    if levels == 0 or rng.random() < 0.2:
        return rng.choice(["[{", "}]", 'a "quoted" ]', "\\[", 1, None, True, "x"])
    children = [random_document(rng, levels - 1) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.5:
        return children
    return {f"k{i}{rng.choice(['', '{', ']'])}": child for i, child in enumerate(children)}


def test_the_depth_read_from_the_brackets_is_the_documents():
    rng = random.Random(27)
    for _ in range(2000):
        document = random_document(rng, rng.randint(1, 40))
        text = json.dumps(document)
        outside_strings = policies._STRING.sub("", text)
        depth = document_depth(document)
        for bound in (depth - 1, depth, depth + 1):
            if bound >= 1:
                assert policies._nests_deeper(outside_strings, bound) == (depth > bound), (text, bound)


def payouts_body(count: int) -> bytes:
    payouts = [
        {"destinationWalletId": "5b971839-c77c-cdbd-76dd-325c1634e9fe", "amount": 1.5, "idempotencyKey": f"p-{i}"}
        for i in range(count)
    ]
    return json.dumps({"sourceWalletId": "x", "atomic": False, "transfers": payouts}).encode()


def test_a_batch_of_many_payouts_is_not_walked(monkeypatch):
    """A thousand payouts hold far more brackets than the bound, but nest
    three deep: nothing in the text can be refused, so the document is not walked."""

    def walked(document):
        raise AssertionError("the document was walked")

    monkeypatch.setattr(policies, "_check", walked)

    assert len(decode_json(payouts_body(1000))["transfers"]) == 1000


@pytest.mark.parametrize("extra", [0, 1])
def test_nesting_past_the_bound_among_many_brackets_is_refused(extra):
    """At the bound it is read; one level past it, among a thousand payouts'
    brackets, it is refused."""
    levels = settings.JSON_MAX_DEPTH - 2 + extra  # the body and its metadata object are two
    body = json.loads(payouts_body(1000))
    body["metadata"] = {"deep": json.loads("[" * levels + "]" * levels)}
    raw = json.dumps(body).encode()

    if extra:
        with pytest.raises(Refused, match="nested deeper"):
            decode_json(raw)
    else:
        assert decode_json(raw)["metadata"]["deep"] is not None
