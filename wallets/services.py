"""Writes of wallets. A balance is never written here: money moves only in
transfers/services.py."""

import uuid

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from events.models import EventType
from events.outbox import record_events
from wallets.exceptions import WalletAlreadyExists
from wallets.models import (
    UNRESTRICTED,
    ClientTierDefault,
    FreezeReason,
    TierProfile,
    Wallet,
    WalletKind,
    WalletLimitChange,
)
from wallets.serializers import WalletSerializer


def settlement_wallet_get_or_create(*, currency: str) -> Wallet:
    """The one settlement wallet of a currency, created on first need."""
    return _system_wallet_get_or_create(WalletKind.SETTLEMENT, currency)


def suspense_wallet_get_or_create(*, currency: str) -> Wallet:
    """The one suspense wallet of a currency (the other side of manual
    adjustments), created on first need."""
    return _system_wallet_get_or_create(WalletKind.SUSPENSE, currency)


def _system_wallet_get_or_create(kind: WalletKind, currency: str) -> Wallet:
    """Safe under concurrency: the kind's partial unique constraint (one per
    currency) lets one insert win; the others read the winner."""
    wallet = Wallet.objects.filter(kind=kind, currency=currency).first()
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic():
            return Wallet.objects.create(kind=kind, currency=currency, user_id=None)
    except IntegrityError:
        return Wallet.objects.get(kind=kind, currency=currency)


def wallet_create(*, owner: AbstractBaseUser, user_id: uuid.UUID, currency: str) -> Wallet:
    """Open a customer wallet with a zero balance, owned by the API client
    `owner` (tenancy: only it may read the wallet or move money out of it),
    in the client's default tier for the currency (ClientTierDefault; none:
    unrestricted).

    One per (owner, user, currency), guarded by a unique constraint: a
    concurrent duplicate gets WalletAlreadyExists, never a second wallet.
    Another client's wallet for the same userId is no conflict.
    """
    settlement_wallet_get_or_create(currency=currency)
    # The client's default tier for the currency (docs/limits.md); none: unrestricted.
    default = ClientTierDefault.objects.filter(client=owner, currency=currency).select_related("tier").first()
    try:
        with transaction.atomic():
            return Wallet.objects.create(
                owner=owner,
                user_id=user_id,
                currency=currency,
                kind=WalletKind.CUSTOMER,
                tier=default.tier if default else None,
            )
    except IntegrityError:
        if Wallet.objects.filter(owner=owner, user_id=user_id, currency=currency).exists():
            raise WalletAlreadyExists() from None
        raise


class UnfreezeNeedsApproval(Exception):
    """The wallet was frozen for fraud: a second person must approve its
    unfreezing (a correction request, corrections.services)."""


def wallet_set_active(
    *,
    wallet: Wallet,
    is_active: bool,
    reason: FreezeReason = FreezeReason.SUPPORT,
    note: str = "",
    second_person_approved: bool = False,
) -> Wallet:
    """Freeze (False, with a `reason` and the `note` its author wrote, kept in
    frozen_note) or unfreeze (True: both cleared) a wallet. A frozen
    wallet can neither send nor receive; transfers check the flag under the
    row lock. Freezing is one person's protective action, whatever the
    reason; so is unfreezing, except for a wallet frozen for FRAUD: that
    needs `second_person_approved` (only corrections.services passes it,
    once a different person approved the request), else UnfreezeNeedsApproval
    and nothing changes (docs/design.md, "Corrections").

    A change of state records wallet.frozen or wallet.unfrozen for the
    wallet's owner in the same transaction (the outbox, events/outbox.py);
    setting the state it already has changes nothing and records nothing
    (freezing a frozen wallet keeps its first reason and note). The note is
    internal: the events show the wallet as GET /api/wallets/{id} does.
    """
    with transaction.atomic():
        # The row lock: an unfreeze and a freeze for fraud cannot cross.
        current = Wallet.objects.select_for_update(no_key=True).only("is_active", "frozen_reason").get(pk=wallet.pk)
        if is_active and current.frozen_reason == FreezeReason.FRAUD and not second_person_approved:
            raise UnfreezeNeedsApproval(
                "This wallet was frozen for suspected fraud: unfreezing it needs a second person's approval "
                "(request it from the wallet page)."
            )
        changed = current.is_active != is_active
        if changed:
            Wallet.objects.filter(pk=wallet.pk).update(
                is_active=is_active,
                frozen_reason="" if is_active else reason,
                frozen_note="" if is_active else note,
                updated_at=timezone.now(),
            )
        wallet.refresh_from_db(fields=["is_active", "frozen_reason", "frozen_note", "updated_at"])
        if changed and wallet.owner_id is not None:
            record_events(
                type=EventType.WALLET_UNFROZEN if is_active else EventType.WALLET_FROZEN,
                data_by_client={wallet.owner_id: WalletSerializer(wallet).data},
            )
    return wallet


# Keep what is: the default of wallet_limits_set's tier.
UNCHANGED = object()


def _tier_name(tier: TierProfile | None) -> str:
    return tier.name if tier is not None else UNRESTRICTED


def wallet_limits_set(
    *,
    wallet: Wallet,
    changed_by: AbstractBaseUser,
    tier: TierProfile | None | object = UNCHANGED,
    post_no_debit: bool | None = None,
    post_no_credit: bool | None = None,
    reason: str = "",
) -> Wallet:
    """Set a customer wallet's tier (a TierProfile of its currency, or None:
    unrestricted) and restrictions (None: keep), as `changed_by` (its
    client through the API, a staff member in the admin) says, for
    `reason` (docs/limits.md).

    Under the wallet's row lock, so a change lands between two movements,
    never inside one (the engine reads the tier under the same lock). Each
    field that changes is one WalletLimitChange row (the wallet's limit
    history); a new tier also records wallet.tier_changed for the owner, in
    the same transaction (the outbox). Setting what is already set changes
    nothing and records nothing. The restriction reason is kept while a
    restriction is on, cleared when none is. Raises ValueError for a tier of
    another currency."""
    if tier is not UNCHANGED and tier is not None and tier.currency != wallet.currency:
        raise ValueError(f"Tier {tier} is not a {wallet.currency} tier.")
    with transaction.atomic():
        current = Wallet.objects.select_for_update(no_key=True, of=("self",)).get(pk=wallet.pk)
        changes: list[tuple[str, str, str]] = []
        updates: dict = {}
        if tier is not UNCHANGED and current.tier_id != (tier.pk if tier else None):
            old = TierProfile.objects.get(pk=current.tier_id) if current.tier_id else None
            changes.append(("tier", _tier_name(old), _tier_name(tier)))
            updates["tier"] = tier
        for field, wanted in (("post_no_debit", post_no_debit), ("post_no_credit", post_no_credit)):
            if wanted is not None and getattr(current, field) != wanted:
                changes.append((field, str(getattr(current, field)).lower(), str(wanted).lower()))
                updates[field] = wanted
        if not changes:
            wallet.refresh_from_db()
            return wallet
        restricted = updates.get("post_no_debit", current.post_no_debit) or updates.get(
            "post_no_credit", current.post_no_credit
        )
        if any(field != "tier" for field, _, _ in changes):
            updates["restriction_reason"] = reason if restricted else ""
        Wallet.objects.filter(pk=wallet.pk).update(**updates, updated_at=timezone.now())
        WalletLimitChange.objects.bulk_create(
            WalletLimitChange(
                wallet=current, what=what, old_value=old, new_value=new, reason=reason, changed_by=changed_by
            )
            for what, old, new in changes
        )
        wallet.refresh_from_db()
        if "tier" in updates and wallet.owner_id is not None:
            record_events(
                type=EventType.WALLET_TIER_CHANGED,
                data_by_client={wallet.owner_id: WalletSerializer(wallet).data},
            )
    return wallet


# The keyless, inactive client that migration transfers/0008_wallet_owners gave
# the wallets no transaction had ever touched, until an operator gives each to
# its API client (docs/operations.md, "The admin").
UNCLAIMED_OWNER = "unclaimed-wallets"


class WalletGiveRefused(Exception):
    """Why a wallet could not be given to a client (a sentence for the admin)."""


def wallet_give_to_client(*, wallet: Wallet, client: AbstractBaseUser) -> Wallet:
    """Make `client` the owner of a wallet that `unclaimed-wallets` holds.

    Only such a wallet: moving a wallet from one real client to another
    would hand one client's money to another, and is not a support task.
    The owner changes only if it is still `unclaimed-wallets` when the row is
    written (one UPDATE), so two operators giving the same wallet at once
    cannot both succeed. Nothing else changes: balance, userId, currency and
    state stay, and the wallet's history stays with it.

    Raises WalletGiveRefused when the wallet is not unclaimed (or no longer
    is), when `client` is not an active API client (staff and the unclaimed
    client itself are not), or when `client` already has a wallet for that
    userId and currency (one per owner, user and currency).
    """
    if not client.is_active or client.is_staff or client.get_username() == UNCLAIMED_OWNER:
        raise WalletGiveRefused(f"{client.get_username()} is not an active API client.")
    unclaimed = get_user_model().objects.filter(username=UNCLAIMED_OWNER).values("pk")
    try:
        with transaction.atomic():
            given = Wallet.objects.filter(pk=wallet.pk, owner__in=unclaimed).update(
                owner=client, updated_at=timezone.now()
            )
    except IntegrityError:
        raise WalletGiveRefused(
            f"{client.get_username()} already has a {wallet.currency} wallet for user {wallet.user_id}."
        ) from None
    if not given:
        raise WalletGiveRefused(f"Wallet {wallet.pk} is not unclaimed: it has an owner.")
    wallet.refresh_from_db(fields=["owner", "updated_at"])
    return wallet
