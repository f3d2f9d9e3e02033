from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine

from stockhub import ids
from stockhub.db.engine import make_engine, ring_on_new_work
from stockhub.settings import Settings
from stockhub.storage import Storage, from_url

log = logging.getLogger(__name__)


@dataclass
class Hub:
    """What every use case needs: the settings, the database, the file storage, and a bell that wakes the workers.

The bell rings after any `db.engine.transaction` that left work (see `db.engine.new_work`).
"""

    settings: Settings
    engine: Engine
    work_arrived: threading.Event = field(default_factory=threading.Event)  # the workers look
    queued_work: threading.Event = field(default_factory=threading.Event)  # ... at every queue, not only events
    token_cache: dict = field(default_factory=dict)  # services.accounts: live tokens, briefly

    def __post_init__(self) -> None:
        ring_on_new_work(self.engine, self.ring)  # every unit of work that leaves work wakes the workers
        ids.configure(self.settings.secret)  # public ids are keyed by the server secret
        if self.settings.secret_key is None and (self.settings.storage_url or "").startswith("s3:"):
            log.warning(
                "STOCKHUB_SECRET_KEY is not set: this node keys ids, upload keys and tokens with the secret in %s,"
                " which other nodes of a fleet do not have; give every node the same STOCKHUB_SECRET_KEY",
                self.settings.data_dir / "secret_key",
            )

    def ring(self, events_only: bool = False) -> None:
        """Wake the workers: to number and deliver events only, or to look at every queue."""
        if not events_only:
            self.queued_work.set()
        self.work_arrived.set()

    @classmethod
    def from_settings(cls, settings: Settings) -> Hub:
        return cls(settings=settings, engine=make_engine(settings.db_url))

    @cached_property
    def storage(self) -> Storage:
        """Where raw uploads, upload logs and FTP folders live (STOCKHUB_STORAGE_URL)."""
        settings = self.settings
        return from_url(
            settings.storage_url,
            settings.data_dir,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            addressing_style=settings.s3_addressing_style,
        )

    @property
    def secret(self) -> bytes:
        return self.settings.secret
