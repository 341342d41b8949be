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
            self.message = "Permission denied: this action is not open to API clients."
            return False
        missing = [perm for perm in required[action] if not request.user.has_perm(perm)]
        if missing:
            # DRF reads `message` off the refusing permission instance (one per request).
            self.message = (
                f"Permission denied: this API client lacks {', '.join(missing)}. "
                "Ask the operator to add it to a group that has it (docs/api.md, API keys and groups)."
            )
            return False
        return True
