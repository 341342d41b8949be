"""The PostgreSQL backend (base.py), and a helper for code that reads rows with
plain SQL and builds model instances from them."""


def in_model_order(model, names) -> list[str]:
    """The primary key and `names`, as the attnames Model.from_db expects for a
    row whose columns come in the model's field order (as .only() selects them)."""
    wanted = {model._meta.pk.attname, *names}
    return [f.attname for f in model._meta.concrete_fields if f.attname in wanted]
