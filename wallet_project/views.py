"""The base of the API's viewsets."""

from rest_framework import viewsets
from rest_framework.exceptions import ValidationError


class ApiViewSet(viewsets.GenericViewSet):
    """What every API route does alike, once its caller is known.

    A query parameter is given once (docs/api.md): QueryDict.get() reads the
    last of several, so `?status=COMPLETED&status=FAILED` would silently mean
    FAILED, and which one a client meant is a guess. Repeated, it is a 400
    naming it, unless the route reads it as a list (repeatable_query_parameters,
    e.g. GET /api/events?type=a&type=b). Checked after authentication, so a
    caller without a key still learns only that (401).
    """

    repeatable_query_parameters: tuple[str, ...] = ()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        repeated = sorted(
            name
            for name, values in request.query_params.lists()
            if len(values) > 1 and name not in self.repeatable_query_parameters
        )
        if repeated:
            raise ValidationError({name: ["Give this parameter once."] for name in repeated})
