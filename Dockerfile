# The service image: API and admin (bin/web: nginx in front of Granian), Celery worker and beat.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# nginx is the service's edge (bin/web runs it, as the wallet user, with every
# file it writes in a private runtime directory). Debian's package, with no
# service: nothing in the image starts it but bin/web.
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files (admin, API docs) are baked into the image and served by WhiteNoise.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --uid 10001 wallet && chown -R wallet /app
USER wallet

EXPOSE 8000
ENV HOST=0.0.0.0 PORT=8000
CMD ["bin/web"]
