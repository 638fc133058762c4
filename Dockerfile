# gmm-service: build a virtual environment, then copy it into a slim image.
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY migrations ./migrations
# The same install the tests exercise (pip install of this project), without the dev extra;
# --build-arg EXTRAS=dask adds the Dask extra (the compose profile `dask` builds it so).
ARG EXTRAS=
RUN pip install ".${EXTRAS:+[$EXTRAS]}"

FROM python:3.11-slim
# /datasets: the compose stack's shared volume of dataset chunks (GMM_STORAGE_URL)
RUN useradd --create-home --uid 10001 gmm && mkdir /data /datasets && chown gmm /data /datasets
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    GMM_HOST=0.0.0.0 \
    GMM_PORT=8000 \
    GMM_DATA_DIR=/data
USER gmm
WORKDIR /home/gmm
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gmm-service", "serve"]
