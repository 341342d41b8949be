"""The content-negotiation fast path answers exactly what DRF's would."""

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from wallet_project.negotiation import FirstRendererNegotiation

RENDERER_LISTS = {"json only": [JSONRenderer()], "json then html": [JSONRenderer(), BrowsableAPIRenderer()]}


def request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"Accept": accept}
    return Request(APIRequestFactory().get(f"/api/wallets{query}", headers=headers))


def choice(negotiation, req, renderers):
    try:
        renderer, media_type = negotiation.select_renderer(req, renderers)
    except NotAcceptable:
        return "406"
    except Http404:  # ?format= names no renderer
        return "404"
    return type(renderer), media_type


@pytest.mark.parametrize("renderers", RENDERER_LISTS.values(), ids=RENDERER_LISTS.keys())
@pytest.mark.parametrize(
    ("accept", "query"),
    [
        (None, ""),
        ("*/*", ""),
        ("application/json", ""),
        ("text/html", ""),
        ("application/json; indent=4", ""),
        ("text/html, application/json;q=0.5", ""),
        ("*/*", "?format=api"),
        ("application/xml", ""),
    ],
)
def test_same_choice_as_drfs_negotiation(renderers, accept, query):
    ours = choice(FirstRendererNegotiation(), request(accept, query), renderers)
    drfs = choice(DefaultContentNegotiation(), request(accept, query), renderers)

    assert ours == drfs


def test_the_fast_path_skips_parsing_the_accept_header(monkeypatch):
    def parsed(self, request):
        raise AssertionError("the Accept header was parsed")

    monkeypatch.setattr(DefaultContentNegotiation, "_get_parsed_accept_list", parsed)

    renderer, media_type = FirstRendererNegotiation().select_renderer(request("*/*"), [JSONRenderer()])

    assert (type(renderer), media_type) == (JSONRenderer, "application/json")
