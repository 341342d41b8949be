"""The content-negotiation fast path answers exactly what DRF's would."""

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from wallet_project.policies import FirstRendererNegotiation
from wallet_project.tests import assert_error_envelope

RENDERER_LISTS = {"json only": [JSONRenderer()], "json then html": [JSONRenderer(), BrowsableAPIRenderer()]}


def request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"Accept": accept}
    return Request(APIRequestFactory().get(f"/api/wallets{query}", headers=headers))


def choice(negotiation, req, renderers):
    try:
        renderer, media_type = negotiation.select_renderer(req, renderers)
    except NotAcceptable:
        return "406"
    except (Http404, ValidationError):  # ?format= names no renderer: DRF's 404, our 400
        return "no such format"
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


@pytest.mark.parametrize("accept", ["application/json", "application/xml", "text/html;q=0", "*/*"])
def test_a_named_format_wins_over_the_accept_header(accept):
    renderers = RENDERER_LISTS["json then html"]

    ours = choice(FirstRendererNegotiation(), request(accept, "?format=api"), renderers)

    assert ours == (BrowsableAPIRenderer, "text/html")


def test_the_fast_path_skips_parsing_the_accept_header(monkeypatch):
    def parsed(self, request):
        raise AssertionError("the Accept header was parsed")

    monkeypatch.setattr(DefaultContentNegotiation, "_get_parsed_accept_list", parsed)

    renderer, media_type = FirstRendererNegotiation().select_renderer(request("*/*"), [JSONRenderer()])

    assert (type(renderer), media_type) == (JSONRenderer, "application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["xml", "api", "", "%00"])
def test_a_format_no_renderer_has_is_400_naming_format(value, treasury_api, funded_wallet):
    wallet = funded_wallet("1.00")

    response = treasury_api.get(f"/api/wallets/{wallet.pk}?format={value}")

    if value:
        assert_error_envelope(response, status=400, code="validation_error", field="format")
    else:  # an empty format names nothing: the default
        assert response.status_code == 200


@pytest.mark.django_db
def test_the_format_a_renderer_has_is_served(treasury_api, funded_wallet):
    wallet = funded_wallet("1.00")

    assert treasury_api.get(f"/api/wallets/{wallet.pk}?format=json").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("application/json;q=0, text/html", 406),  # JSON refused in so many words, HTML not offered
        ("application/json; q=0.000", 406),
        ("*/*;q=0", 406),
        ("application/json;q=0.5, text/html;q=0", 200),
        ("text/html;q=0, */*", 200),
    ],
)
def test_a_media_type_with_q_0_is_one_the_client_refuses(accept, status, treasury_api, funded_wallet):
    # RFC 9110, 12.4.2: "q=0" means "not acceptable"; DRF ranks by specificity only and would serve it.
    wallet = funded_wallet("1.00")

    response = treasury_api.get(f"/api/wallets/{wallet.pk}", headers={"Accept": accept})

    if status == 406:
        assert_error_envelope(response, status=406, code="not_acceptable")
    else:
        assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
