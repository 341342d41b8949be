import django_filters
from django import forms

from transfers.models import TransactionLog, TransactionStatus, TransactionType


class NoBlankFiltersForm(forms.Form):
    """A filter that is given names one of its values: `status=` (empty) is a
    400 naming it, as the schema's enum says, not a silent "no filter"."""

    def clean(self):
        cleaned = super().clean()
        for name in self.fields:
            if name in self.data and not self.data.get(name):
                self.add_error(name, "Give one of the values, or leave the filter out.")
        return cleaned


class TransactionLogFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=TransactionStatus.choices)
    type = django_filters.ChoiceFilter(choices=TransactionType.choices)

    class Meta:
        model = TransactionLog
        fields = ["status", "type"]
        form = NoBlankFiltersForm
