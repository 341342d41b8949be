import uuid

import factory
from django.contrib.auth import get_user_model

from wallets.models import Wallet, WalletKind


class OwnerFactory(factory.django.DjangoModelFactory):
    """An API client that owns wallets (tenancy); without a key or groups."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"wallet-owner-{n}")
    password = factory.django.Password(None)


class WalletFactory(factory.django.DjangoModelFactory):
    """A customer wallet with a zero balance: fund it through a deposit
    (the funded_wallet fixture), never by setting a balance."""

    class Meta:
        model = Wallet

    owner = factory.SubFactory(OwnerFactory)
    user_id = factory.LazyFunction(uuid.uuid4)
    kind = WalletKind.CUSTOMER
    currency = "NGN"
