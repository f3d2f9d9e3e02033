from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine

from stockhub.db.engine import make_engine
from stockhub.settings import Settings
from stockhub.storage import Storage, from_url


@dataclass
class Hub:
    """What every use case needs: the settings, the database, the file storage, and a bell that wakes the workers."""

    settings: Settings
    engine: Engine
    work_arrived: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_settings(cls, settings: Settings) -> Hub:
        return cls(settings=settings, engine=make_engine(settings.db_url))

    @cached_property
    def storage(self) -> Storage:
        """Where raw uploads, upload logs and FTP folders live (STOCKHUB_STORAGE_URL)."""
        return from_url(self.settings.storage_url, self.settings.data_dir)

    @property
    def secret(self) -> bytes:
        return self.settings.secret
