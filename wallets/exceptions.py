from rest_framework import status

from wallet_project.exceptions import ServiceError


class WalletNotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "wallet_not_found"
    default_detail = "Wallet not found."


class WalletAlreadyExists(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "wallet_exists"
    default_detail = "This user already has a wallet in this currency."
