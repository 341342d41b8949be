import factory
from django.contrib.auth import get_user_model


class ApiUserFactory(factory.django.DjangoModelFactory):
    """An API client: a user without a password, authenticated by token."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"api-client-{n}")
    password = factory.django.Password(None)  # unusable: clients authenticate by token
