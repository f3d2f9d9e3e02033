"""Settings from `STOCKHUB_*` environment variables (or `stockhub.toml`), with embedded defaults."""

from __future__ import annotations

import re
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

RATE = re.compile(r"off|(\d+)\s*/\s*(second|minute|hour)")  # a rate limit setting (services/rate_limits.py)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STOCKHUB_", toml_file="stockhub.toml", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None  # default: SQLite file in data_dir
    secret_key: str | None = None  # default: generated into data_dir on first run
    public_url: str | None = None  # base of the upload URLs we hand out; default: the request's own base URL
    storage_url: str | None = None  # where files live (storage.py): default the data folder; file:///path; s3://bucket/prefix
    s3_endpoint_url: str | None = None  # an S3-compatible server other than AWS (MinIO: http://minio:9000); credentials: AWS_* settings
    s3_region: str | None = None  # default: AWS_DEFAULT_REGION / AWS_REGION, or the AWS profile's
    s3_addressing_style: str | None = None  # "path" or "virtual"; default: path with an endpoint URL, else auto
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int | None = None  # `stockhub serve`'s HTTP API processes; default: the number of cores
    http_header_timeout_seconds: float = 10  # a request head must be complete this soon after it began
    http_body_idle_timeout_seconds: float = 30  # the longest wait for the next chunk of a request body
    http_body_timeout_seconds: float = 60  # a request body's whole time (an upload's is bounded by its URL's expiry)

    upload_max_bytes: int = 200 * 1024 * 1024
    upload_url_ttl_seconds: int = 15 * 60
    upload_url_grace_seconds: float = 60  # a PUT still arriving this long after its URL expired is cut off
    offer_ttl_seconds: int = 15 * 60  # how long a pickup or delivery option's offer_token can be booked
    invalid_threshold: float = 0.5  # share of rejected rows above which a whole file is refused
    expiry_days: int = 7
    apply_part_rows: int = 2000  # SQLite: a stock file of more rows is applied in parts of this many, each its own write transaction
    worker_poll_seconds: float = 2.0
    auth_cache_seconds: float = 5.0  # a token revoked by another process stops working within this
    worker_lease_seconds: int = 300
    upload_max_attempts: int = 3  # an upload whose reading fails (or is interrupted) this often is refused as invalid

    # reading untrusted files (feeds/sandbox.py): each upload is parsed in a child process
    parse_max_memory_mb: int = 2048  # address space beyond the idle reader's; sized for 2 cores / 24 GB
    parse_timeout_seconds: float = 120.0  # wall time, below worker_lease_seconds
    parse_max_columns: int = 64
    parse_max_rows: int = 2_000_000
    parse_max_cell_chars: int = 32_767  # as much as a spreadsheet cell holds
    # catalog imports (POST /v1/catalog/imports): the largest document, the most products in one,
    # and the size above which a document is read in the sandbox (a smaller one is also checked at once)
    catalog_import_max_bytes: int = 100 * 1024 * 1024
    catalog_import_max_items: int = 200_000
    catalog_import_sandbox_bytes: int = 1024 * 1024
    sweep_interval_seconds: int = 3600
    store_disconnected_after_days: int = 3  # no stock upload for this long: the store is disconnected
    store_min_in_stock_items: int = 1  # a stock file reporting fewer in-stock items makes the store invalid

    # inventory feeds (services/feeds.py, jobs/feeds.py)
    daily_item_limit: int | None = None  # item updates per organization and UTC day; None: unlimited (organizations.daily_item_limit overrides)
    feed_fetch_timeout_seconds: float = 60.0  # a pull feed's whole fetch
    feed_fetch_max_bytes: int = 200 * 1024 * 1024
    feed_retry_seconds: list[float] = [60, 300, 900]  # after a failed fetch, before the next try; then the feed's own schedule
    feed_tls_ca_file: Path | None = None  # PEM certificates trusted besides the system's, for https and ftps feeds

    # FTP/FTPS gateway (gateways/ftp.py); the size cap is upload_max_bytes
    ftp_enabled: bool = True  # `stockhub serve` runs the gateway beside the API
    ftp_host: str | None = None  # default: host
    ftp_port: int = 2121  # 21 in production
    ftp_passive_ports: str | None = None  # "60000-60099"; default: any free port
    ftp_masquerade_address: str | None = None  # the public IP to announce in PASV replies behind NAT
    ftp_idle_timeout_seconds: int = 300  # control connection with no command
    ftp_data_timeout_seconds: int = 300  # data connection with no traffic
    ftp_tls_cert: Path | None = None  # PEM certificate (chain) for explicit FTPS (AUTH TLS)
    ftp_tls_key: Path | None = None  # PEM private key; default: in the certificate file
    ftp_tls_required: bool = False  # refuse logins and transfers that are not under TLS
    ftp_login_failure_delay_seconds: float = 2.0  # answer a wrong key this late (grows with failures)
    ftp_max_login_failures: int = 10  # from one address within the lockout period, then refused
    ftp_lockout_seconds: int = 900
    ftp_max_connections_per_address: int = 20  # control connections from one address at once; more get 421
    ftp_login_timeout_seconds: float = 30  # a connection not logged in by then is closed

    # events and webhooks
    webhook_timeout_seconds: float = 15.0  # an attempt's whole time: connect, send, the answer and its first bytes
    webhook_retry_schedule: list[float] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]  # delay before each attempt
    webhook_disable_after_seconds: int = 5 * 24 * 3600  # a subscription failing this long is disabled
    webhook_lease_seconds: int = 60  # must exceed the timeout: a lapsed lease means the worker died
    webhook_concurrency: int = 16  # requests in flight per worker
    webhook_max_in_flight_per_subscription: int | None = None  # per worker; default: a quarter of the concurrency, at least 2
    webhook_secret_grace_seconds: int = 24 * 3600  # both secrets sign for this long after a rotation
    webhook_allow_loopback: bool = False  # demo/test mode: http:// and loopback receivers
    webhook_allow_private: bool = False  # receivers on private or link-local addresses
    event_retention_days: int = 30  # events, finished deliveries and their attempts

    # accounts and OAuth
    oauth_access_token_seconds: int = 20 * 3600
    oauth_refresh_token_days: int = 30
    oauth_code_seconds: int = 600
    session_hours: int = 12  # a signed-in user's session cookie

    # notification mail (jobs/mail.py); off while smtp_host is unset
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = "stockhub <stockhub@localhost>"
    mail_lease_seconds: int = 60
    mail_retry_seconds: list[float] = [60, 300, 1800, 7200, 21600]  # then the mail is given up (failed)

    # operations (README "Operate it"): logs, metrics, shutdown, rate limits
    log_format: Literal["auto", "json", "text"] = "auto"  # auto: JSON lines unless stderr is a terminal
    log_level: str = "INFO"
    metrics_token: str | None = None  # set: GET /metrics wants "Authorization: Bearer <it>"; unset: open, like /healthz
    shutdown_grace_seconds: float = 25  # on SIGTERM: in-flight requests and work get this long, then work is released
    # "<count>/<second|minute|hour>" or "off"; per bearer token, and per client address (every request)
    rate_limit_per_token: str = "1200/minute"
    rate_limit_per_address: str = "3000/minute"
    rate_limit_store: Literal["auto", "database", "memory"] = "auto"  # auto: the database on PostgreSQL, memory on SQLite
    # threads per API process for a request's blocking work (the database): more than the cores can
    # use only contend for them; requests beyond wait their turn in arrival order
    api_threads: int = Field(4, ge=1, le=200)

    @field_validator("rate_limit_per_token", "rate_limit_per_address")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        if not RATE.fullmatch(value.strip().lower()):
            raise ValueError(f"{value!r} is not a rate: write e.g. 600/minute (per second, minute or hour), or off")
        return value.strip().lower()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'stockhub.sqlite3').resolve()}"

    @cached_property
    def secret(self) -> bytes:
        """The server secret: from the setting, else generated once into the data folder."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip().encode()
