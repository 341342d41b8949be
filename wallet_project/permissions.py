from rest_framework.permissions import BasePermission


class ActionPermissions(BasePermission):
    """Each viewset names the Django permissions each action needs:

        required_permissions = {"create": ["wallets.add_wallet"], "retrieve": [...]}

    An action missing from the map is refused (deny by default). A request
    that matches no action (an unsupported method) passes, so that DRF
    answers it with 405 rather than 403, and so does OPTIONS.
    """

    def has_permission(self, request, view) -> bool:
        action = getattr(view, "action", None)
        if action is None or action == "metadata":
            # No action: DRF answers 405. "metadata" is OPTIONS, which names
            # the route's methods and nothing more (wallet_project/metadata.py),
            # to a client that is authenticated anyway.
            return True
        required = getattr(view, "required_permissions", {})
        if action not in required:
            return False
        return request.user.has_perms(required[action])
