"""Writes of wallets. A balance is never written here: money moves only in
transfers/services.py."""

import uuid

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from wallets.events import record_events
from wallets.exceptions import WalletAlreadyExists
from wallets.models import EventType, Wallet, WalletKind
from wallets.serializers import WalletSerializer


def settlement_wallet_get_or_create(*, currency: str) -> Wallet:
    """The one settlement wallet of a currency, created on first need.

    Safe under concurrency: the partial unique constraint lets one insert
    win; the others read the winner.
    """
    wallet = Wallet.objects.filter(kind=WalletKind.SETTLEMENT, currency=currency).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic():
            return Wallet.objects.create(kind=WalletKind.SETTLEMENT, currency=currency, user_id=None)
    except IntegrityError:
        return Wallet.objects.get(kind=WalletKind.SETTLEMENT, currency=currency)


def wallet_create(*, owner: AbstractBaseUser, user_id: uuid.UUID, currency: str) -> Wallet:
    """Open a customer wallet with a zero balance, owned by the API client
    `owner` (tenancy: only it may read the wallet or move money out of it).

    One per (owner, user, currency), guarded by a unique constraint: a
    concurrent duplicate gets WalletAlreadyExists, never a second wallet.
    Another client's wallet for the same userId is no conflict.
    """
    settlement_wallet_get_or_create(currency=currency)
    try:
        with transaction.atomic():
            return Wallet.objects.create(owner=owner, user_id=user_id, currency=currency, kind=WalletKind.CUSTOMER)
    except IntegrityError:
        if Wallet.objects.filter(owner=owner, user_id=user_id, currency=currency).exists():
            raise WalletAlreadyExists() from None
        raise


def wallet_set_active(*, wallet: Wallet, is_active: bool) -> Wallet:
    """Freeze (False) or unfreeze (True) a wallet. A frozen wallet can neither
    send nor receive; transfers check the flag under the row lock.

    A change of state records wallet.frozen or wallet.unfrozen for the
    wallet's owner in the same transaction (the outbox, wallets/events.py);
    setting the state it already has changes nothing and records nothing.
    """
    with transaction.atomic():
        changed = (
            Wallet.objects.filter(pk=wallet.pk)
            .exclude(is_active=is_active)
            .update(is_active=is_active, updated_at=timezone.now())
        )
        wallet.refresh_from_db(fields=["is_active", "updated_at"])
        if changed and wallet.owner_id is not None:
            record_events(
                type=EventType.WALLET_UNFROZEN if is_active else EventType.WALLET_FROZEN,
                data_by_client={wallet.owner_id: WalletSerializer(wallet).data},
            )
    return wallet
