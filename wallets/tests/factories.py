import uuid

import factory

from wallets.models import Wallet, WalletKind


class WalletFactory(factory.django.DjangoModelFactory):
    """A customer wallet with a zero balance: fund it through a deposit
    (the funded_wallet fixture), never by setting a balance."""

    class Meta:
        model = Wallet

    user_id = factory.LazyFunction(uuid.uuid4)
    kind = WalletKind.CUSTOMER
    currency = "NGN"
