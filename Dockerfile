# stockhub: one image for every role (API, worker, FTP); the command chooses the role.
#   docker build -t stockhub .
#   docker run -p 8000:8000 -p 2121:2121 stockhub                      # embedded: SQLite and files in /var/lib/stockhub/data
#   docker compose -f deploy/compose.yaml up                          # a fleet: PostgreSQL, MinIO, api ×2, worker, ftp
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# a system user without a login shell; the data folder is the only place it writes
RUN groupadd --system --gid 10001 stockhub \
 && useradd --system --uid 10001 --gid stockhub --home-dir /var/lib/stockhub --shell /usr/sbin/nologin stockhub \
 && install -d -o stockhub -g stockhub -m 0750 /var/lib/stockhub /var/lib/stockhub/data

WORKDIR /usr/src/stockhub
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install . && rm -rf /usr/src/stockhub

USER stockhub
WORKDIR /var/lib/stockhub
ENV STOCKHUB_DATA_DIR=/var/lib/stockhub/data \
    STOCKHUB_HOST=0.0.0.0
VOLUME ["/var/lib/stockhub/data"]
EXPOSE 8000 2121

# the API's liveness; compose gives the worker and FTP roles their own checks
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["stockhub", "serve"]
