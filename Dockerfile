# Relay service image: `docker build -t relay-context .` then `docker compose up -d`.
# Stage 1 builds the wheel (C++ core + extension); stage 2 runs it with the runtime libraries
# only, as an unprivileged user.

FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ cmake ninja-build pkg-config \
      libabsl-dev libxxhash-dev libzstd-dev liblz4-dev libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml CMakeLists.txt README.md ./
COPY cpp ./cpp
COPY python ./python
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 libxxhash0 libzstd1 liblz4-1 libhiredis0.14 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 relay
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER relay
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/home/relay/.relay \
    ENVIRONMENT=production \
    PYTHONUNBUFFERED=1
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# `relay serve` handles SIGTERM: open SSE streams end, then the process exits.
STOPSIGNAL SIGTERM
CMD ["relay", "serve"]
