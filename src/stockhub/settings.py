"""Settings from `STOCKHUB_*` environment variables (or `stockhub.toml`), with embedded defaults."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STOCKHUB_", toml_file="stockhub.toml", extra="ignore")

    data_dir: Path = Path("data")
    database_url: str | None = None  # default: SQLite file in data_dir
    secret_key: str | None = None  # default: generated into data_dir on first run
    public_url: str | None = None  # base of the upload URLs we hand out; default: the request's own base URL
    host: str = "127.0.0.1"
    port: int = 8000

    upload_max_bytes: int = 200 * 1024 * 1024
    upload_url_ttl_seconds: int = 15 * 60
    offer_ttl_seconds: int = 15 * 60  # how long a pickup or delivery option's offer_token can be booked
    invalid_threshold: float = 0.5  # share of rejected rows above which a whole file is refused
    expiry_days: int = 7
    worker_poll_seconds: float = 2.0
    worker_lease_seconds: int = 300
    sweep_interval_seconds: int = 3600

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

    # events and webhooks
    webhook_timeout_seconds: float = 15.0
    webhook_retry_schedule: list[float] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]  # delay before each attempt
    webhook_disable_after_seconds: int = 5 * 24 * 3600  # a subscription failing this long is disabled
    webhook_lease_seconds: int = 60  # must exceed the timeout: a lapsed lease means the worker died
    webhook_concurrency: int = 16  # requests in flight per worker
    webhook_secret_grace_seconds: int = 24 * 3600  # both secrets sign for this long after a rotation
    webhook_allow_loopback: bool = False  # demo/test mode: http:// and loopback receivers
    webhook_allow_private: bool = False  # receivers on private or link-local addresses
    event_retention_days: int = 30  # events, finished deliveries and their attempts

    # accounts and OAuth
    oauth_access_token_seconds: int = 20 * 3600
    oauth_refresh_token_days: int = 30
    oauth_code_seconds: int = 600
    session_hours: int = 12  # a signed-in user's session cookie

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def upload_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def ftp_dir(self) -> Path:
        """Each store's FTP folder lives here, named by the store's public id."""
        return self.data_dir / "ftp"

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
