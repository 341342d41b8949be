"""The base of the API's viewsets."""

from rest_framework import viewsets
from rest_framework.exceptions import AuthenticationFailed, ValidationError
from rest_framework.settings import api_settings

from wallet_project.throttling import Charge, ChargedOnLookup, ChargeLock, action_scope, charged_if_malformed


class ApiViewSet(viewsets.GenericViewSet):
    """What every API route does alike, once its caller is known.

    Query parameters are strict (docs/api.md). An action reads only the
    parameters its `query_parameters` entry names (none if it has no entry)
    and `format`, which content negotiation reads on every route: any other
    is a 400 naming it, never silently ignored (`/api/tiers?curency=NGN`
    would otherwise list every currency's tiers). The entries are the names
    the schema documents for each operation; a test holds the two together.
    OPTIONS describes the route and reads none, so a browser's preflight
    that repeats a GET's query is not refused; a method the route does not
    take is its 405, whatever the query.

    A query parameter is given once: QueryDict.get() reads the
    last of several, so `?status=COMPLETED&status=FAILED` would silently mean
    FAILED, and which one a client meant is a guess. Repeated, it is a 400
    naming it, unless the route reads it as a list (repeatable_query_parameters,
    e.g. GET /api/events?type=a&type=b). Checked after authentication, so a
    caller without a key still learns only that (401).

    An action whose throttle_scopes entry is ChargedOnLookup charges its
    request itself, once it knows what it costs: `charge`.
    """

    query_parameters: dict[str, tuple[str, ...]] = {}
    repeatable_query_parameters: tuple[str, ...] = ()
    # Set by charge(): DRF makes a view instance per request.
    request_charge: Charge | None = None
    # Set by the charge's throttle: whether its lock was taken.
    charge_locked = False

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # DRF charged every other action before this point; one that charges
        # itself is charged here as any malformed money request is.
        with charged_if_malformed(request, self):
            self._check_query(request)

    def _check_query(self, request) -> None:
        query = request.query_params
        if not query or self.action not in self.action_map.values():
            return  # OPTIONS (DRF's "metadata"), or a method the route does not take: its 405 follows
        read = {*self.query_parameters.get(self.action, ()), api_settings.URL_FORMAT_OVERRIDE}
        unknown = sorted(set(query) - read)
        if unknown:
            raise ValidationError({name: ["Unknown parameter."] for name in unknown})
        repeated = sorted(
            name for name, values in query.lists() if len(values) > 1 and name not in self.repeatable_query_parameters
        )
        if repeated:
            raise ValidationError({name: ["Give this parameter once."] for name in repeated})

    # A request let in on a cached API key runs unconfirmed until its rate
    # limit's round trip reads the credentials version (wallet_project/throttling.py,
    # clients/authentication.py). A request refused before that is confirmed
    # first: a permission granted a moment ago counts, and a revoked key gets
    # its 401 whatever else was wrong with the request.

    def permission_denied(self, request, message=None, code=None):
        if _confirm_credentials(request):
            return self.check_permissions(request)  # under the client as it is now
        return super().permission_denied(request, message, code)

    def finalize_response(self, request, response, *args, **kwargs):
        try:
            _confirm_credentials(request)
        except AuthenticationFailed as exc:
            response = self.handle_exception(exc)
        return super().finalize_response(request, response, *args, **kwargs)

    def charge(self, request, *, replay: bool, units: int = 1, lock: ChargeLock | None = None) -> bool:
        """Charge this request to the rate limit through DRF's throttles:
        `units` of the action's ChargedOnLookup scope for a replay or for new
        work (wallet_project/throttling.py), taking `lock` in the same round
        trip once it is let in. Raises Throttled (429) over the limit, before
        the caller has locked or stored anything. Returns whether the lock
        was taken (False: taken by another, Redis unreachable, or none)."""
        entry = action_scope(self, request.method)
        if not isinstance(entry, ChargedOnLookup):
            raise TypeError(f"{type(self).__name__}.{self.action} is charged by DRF before it runs, not by its view")
        self.request_charge = Charge(entry.replay if replay else entry.new, units, lock)
        self.charge_locked = False
        self.check_throttles(request)
        return self.charge_locked


def _confirm_credentials(request) -> bool:
    """Confirm the cached client a request runs on, if it has not been
    (the authenticator's confirm: True if the client was read again)."""
    authenticator = getattr(request, "_authenticator", None)
    return getattr(authenticator, "unconfirmed_key", None) is not None and authenticator.confirm(request)
