# Image for the stream-ensemble CLI (worker, trainer, demo producer); used by docker-compose.yml.
#   docker build -t stream-ensemble .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_WAIT_POLICY=PASSIVE

WORKDIR /app
# Only what the package needs (README.md* also matches when the README is absent).
COPY pyproject.toml README.md* ./
COPY schemas ./schemas
COPY stream_ensemble ./stream_ensemble
RUN pip install . \
 && useradd --create-home --uid 10001 app \
 && mkdir -p /data/registry \
 && chown -R app:app /data

USER app
WORKDIR /data
ENTRYPOINT ["stream-ensemble"]
CMD ["--help"]
