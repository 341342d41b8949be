import django_filters

from transfers.models import TransactionLog, TransactionStatus, TransactionType


class TransactionLogFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=TransactionStatus.choices)
    type = django_filters.ChoiceFilter(choices=TransactionType.choices)

    class Meta:
        model = TransactionLog
        fields = ["status", "type"]
