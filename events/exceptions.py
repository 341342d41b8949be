from rest_framework import status

from wallet_project.exceptions import ServiceError


class WebhookEndpointsLimit(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "webhook_endpoints_limit"
    default_detail = "This client has as many webhook endpoints as a client may."


class WebhookEndpointNotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "webhook_endpoint_not_found"
    default_detail = "Webhook endpoint not found."
