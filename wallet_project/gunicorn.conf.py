"""gunicorn settings for the API and admin (see Procfile and docker-compose.yml)."""

import os

workers = int(os.environ.get("WEB_CONCURRENCY", "4"))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
accesslog = "-"
# Bounded request lines and headers; the body bound is API_MAX_BODY_BYTES.
limit_request_line = 8190
limit_request_fields = 100
