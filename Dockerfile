# gmm-service: a virtual environment built in two layers, dependencies then this project,
# copied into a slim image as two layers too: a source change rebuilds only the small ones.
FROM python:3.11-slim AS deps
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
# 1. The dependencies, from pyproject.toml alone and a stub package: rebuilt only when
#    pyproject.toml (or EXTRAS) changes, not when the source does. Then what the service
#    never runs: the packages' test suites, C and Cython sources and headers, type
#    stubs, debug information (about 70 MB). /opt/runtime: the same without the build
#    tools, the image's /opt/venv.
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
      -exec strip --strip-debug {} \; \
 && cp -a /opt/venv /opt/runtime \
 && /opt/runtime/bin/python -m pip uninstall --yes --quiet setuptools wheel pip

# 2. This project: the same install the tests exercise (pip install of this project),
#    without the dev extra; no dependency left to fetch, no build environment to make.
#    /opt/project: the files it installed, laid out as in /opt/venv.
FROM deps AS build
COPY README.md ./
COPY service ./service
COPY migrations ./migrations
RUN pip install --no-deps --no-build-isolation .
RUN cd /opt/venv/lib/python3.11/site-packages \
 && pip show --files gmm-service | sed -n 's/^  //p' | while read -r file; do \
      target=/opt/project/$(realpath --relative-to=/opt/venv "$file"); \
      mkdir -p "${target%/*}" && cp -p "$file" "$target"; \
    done

FROM python:3.11-slim
# /datasets: the compose stack's shared volume of dataset chunks (GMM_STORAGE_URL)
RUN useradd --create-home --uid 10001 gmm && mkdir /data /datasets && chown gmm /data /datasets
COPY --from=deps /opt/runtime /opt/venv
COPY --from=build /opt/project/ /opt/venv/
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
