# The image Railway builds: railway.json names this file (builder DOCKERFILE), and Railway would
# use it even unnamed, since a root Dockerfile wins over Railpack and Nixpacks (README,
# "Deploying"). Any other container host builds the same file. `make image-check` builds and
# calls it on a Debian machine without a Docker daemon.
# Build: compiler + libmpg123 headers; run: only the shared library, as an unprivileged user.

# The base of both stages. The default is the public image; `make image-check` passes a Debian
# bookworm base made by mmdebstrap (python3.11 from Debian) so that nothing is pulled here.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# python:*-slim carries the interpreter's headers; a plain Debian base needs python3-dev.
RUN set -eu; pkgs="gcc libc6-dev libmpg123-dev pkg-config"; \
    python -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("include"), "Python.h")))' \
      || pkgs="$pkgs python3-dev"; \
    apt-get update \
 && apt-get install -y --no-install-recommends $pkgs \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY csrc ./csrc
COPY hotline ./hotline
# A builder that reaches PyPI through a proxy with its own CA passes a pip.conf (PIP_CONFIG_FILE).
ARG PIP_CONFIG_FILE
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/venv/bin/pip install --no-cache-dir ".[postgres,vad]" \
 && /opt/venv/bin/python -c "import hotline.codec as c; print('libmpg123', c.mpg123_version())"

FROM ${BASE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libmpg123-0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin hotline \
 && install -d -o hotline -g hotline -m 0700 /var/lib/hotline
# The working directory holds the call records' default SQLite file (HOTLINE_DATABASE_URL): mount
# a volume here to keep it across deploys, or set DATABASE_URL to a PostgreSQL.
WORKDIR /var/lib/hotline
COPY --from=build /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:$PATH" PYTHONUNBUFFERED=1 PORT=8000
# Behind Railway's edge, trust every X-Forwarded-For hop (README, HOTLINE_TRUSTED_PROXIES; the
# same value as nixpacks.toml's). Railway passes RAILWAY_ENVIRONMENT_ID to every build; elsewhere
# it is unset, the variable stays empty, and empty means unset: no proxy is trusted.
ARG RAILWAY_ENVIRONMENT_ID
ENV HOTLINE_TRUSTED_PROXIES=${RAILWAY_ENVIRONMENT_ID:+*}
USER hotline
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=2)"
# exec: hotline is PID 1 and gets the platform's SIGTERM itself (it drains, then exits 0).
CMD ["sh", "-c", "exec hotline serve --host 0.0.0.0 --port \"$PORT\""]
