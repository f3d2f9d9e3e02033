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
    invalid_threshold: float = 0.5  # share of rejected rows above which a whole file is refused
    expiry_days: int = 7
    worker_poll_seconds: float = 2.0
    worker_lease_seconds: int = 300
    sweep_interval_seconds: int = 3600

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
