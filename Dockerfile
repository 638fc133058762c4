# gmm-service: build a virtual environment, then copy it into a slim image.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# binutils: `strip`, to drop the debug information some wheels ship in their extensions
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils >/dev/null \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# --build-arg EXTRAS=dask adds the Dask extra (the compose profile `dask` builds it so).
ARG EXTRAS=
# 1. The dependencies, from pyproject.toml alone and a stub package: this layer is
#    rebuilt only when pyproject.toml (or EXTRAS) changes, not when the source does.
#    Then what the service never runs: the packages' test suites, C and Cython
#    sources and headers, type stubs, debug information (about 70 MB).
COPY pyproject.toml ./
RUN mkdir service && touch service/__init__.py README.md \
 && pip install setuptools wheel ".${EXTRAS:+[$EXTRAS]}" \
 && pip uninstall --yes gmm-service \
 && rm -rf service README.md build *.egg-info \
 && cd /opt/venv/lib/python3.11/site-packages \
 && find . -depth -type d -name tests -exec rm -rf {} + \
 && find . -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' -o -name '*.c' \
      -o -name '*.cpp' -o -name '*.h' \) -delete \
 && find . -name '*.so' -exec sh -c 'readelf -S "$1" | grep -q "\.debug_info"' _ {} \; \
      -exec strip --strip-debug {} \;
# 2. This project: the same install the tests exercise (pip install of this project),
#    without the dev extra; no dependency left to fetch, no build environment to make.
#    Then the build tools leave the venv.
COPY README.md ./
COPY service ./service
COPY migrations ./migrations
RUN pip install --no-deps --no-build-isolation . \
 && pip uninstall --yes setuptools wheel pip

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 gmm && mkdir /data && chown gmm /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GMM_HOST=0.0.0.0 \
    GMM_PORT=8000 \
    GMM_DATA_DIR=/data \
    GMM_WORKER_HEARTBEAT_FILE=/tmp/gmm-worker.heartbeat
USER gmm
WORKDIR /home/gmm
EXPOSE 8000
# The API's check; compose gives the workers theirs (`gmm-service worker --check`).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gmm-service", "serve"]
