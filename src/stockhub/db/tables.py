"""The tables. SQLAlchemy Core: the statements stay visible and the same for SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, on both engines (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_stored(value):
    """A value as a column keeps it: an aware datetime as naive UTC (`UTCDateTime`), anything else
    as it is. For statements that take columns as arrays or JSON, which no column type processes."""
    return _STORED_UTC(value, None) if isinstance(value, datetime) else value


_STORED_UTC = UTCDateTime().process_bind_param


# BigInteger ids autoincrement on PostgreSQL; on SQLite only INTEGER PRIMARY KEY does.
Id = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("daily_item_limit", Integer),  # item updates per UTC day (feeds, files); null: the setting (unlimited by default)
)

brands = Table(
    "brands",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

stores = Table(
    "stores",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("brand_id", Id, ForeignKey("brands.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("address_line1", String(500)),
    Column("address_line2", String(500)),
    Column("city", String(200)),
    Column("postal_code", String(20)),
    Column("state", String(200)),  # region, county or province, as the country writes addresses
    Column("country", String(2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("upload_key_hash", String(64), nullable=False, unique=True),
    Column("upload_key_rotated_at", UTCDateTime, nullable=False, default=utcnow),
    # what a feed's quantity means: "on_hand" (a physical count) or "available" (to sell)
    Column("feed_quantity_means", String(20), nullable=False, default="on_hand", server_default="on_hand"),
    Column("upload_key_sealed", Text),  # the key encrypted for connected partners (services/vault.py)
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    # custom product data (products.csv) is on: stock rows may use any alphanumeric identifier
    Column("custom_products", Boolean, nullable=False, default=False, server_default=false()),
    # domain.store_status: pending | connected | invalid | disconnected, kept by services/store_status.py
    Column("status", String(20), nullable=False, default="pending", server_default="pending"),
    Column("status_warnings", Text),  # JSON list of warning codes
    Column("status_changed_at", UTCDateTime),
    Index("ix_stores_organization_id_status", "organization_id", "status"),
    # units kept back from sale of every product the store has, unless the product overrides it
    Column("safety_stock", Integer, nullable=False, default=0, server_default=text("0")),
    # which per-location column of an export (Square "Current Quantity <name>", Vend
    # "inventory_<name>", ...) is this store's: feeds.presets
    Column("location_name", String(200)),
    Column("column_mapping", Text),  # JSON, feeds.mapping: how this store's stock files are read
)

# Every bearer credential: kind `api` (an organization's CLI-made token, all its scopes),
# `admin` (platform administration), and the OAuth kinds `access` and `refresh`.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), index=True),  # none: admin, partner-level
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("kind", String(20), nullable=False, default="api"),
    Column("label", String(200)),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("revoked_at", UTCDateTime),
    Column("partner_id", Id, ForeignKey("partners.id"), index=True),
    Column("user_id", Id, ForeignKey("users.id")),
    Column("scope", Text),  # space-separated; none: every scope of the organization (kind api)
    Column("family", String(32), index=True),  # tokens of one grant, revoked together
    Column("expires_at", UTCDateTime),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("kind", String(20), nullable=False),  # stock | products
    Column("source", String(20), nullable=False),  # http | cli | ftp
    Column("url_nonce", String(64), unique=True),  # a signed upload URL is good for one upload
    Column("filename", String(255)),
    Column("path", String(1000), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("status", String(20), nullable=False, default="received"),
    Column("received_at", UTCDateTime, nullable=False, default=utcnow),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("worker_id", String(100)),
    Column("lease_until", UTCDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("line_count", Integer),
    Column("valid_count", Integer),
    Column("rejected_count", Integer),
    Column("superseded_count", Integer),
    Column("in_stock_count", Integer),
    Column("changed_count", Integer),
    Column("warnings", Text),  # JSON list of strings
    Column("error", Text),  # why the upload is invalid or failed
    Column("preset", String(40)),  # the export preset recognised (feeds.presets), or "mapping"
    Column("skipped_count", Integer),  # rows that are not items (image rows, parents of variants)
    Column("feed_id", Id),  # set: a document fetched by this pull feed (services/feeds.py)
    Index("ix_uploads_store_id_id", "store_id", "id"),
    Index("ix_uploads_status", "status"),
)

upload_rejections = Table(
    "upload_rejections",
    metadata,
    Column("id", Id, primary_key=True),
    Column("upload_id", Id, ForeignKey("uploads.id"), nullable=False, index=True),
    Column("row", Integer, nullable=False),
    Column("field", String(50), nullable=False),
    Column("value", Text),
    Column("reason", Text, nullable=False),
)

# stock_levels and stock_movements carry no foreign keys: an ingest writes 200,000 rows of them
# at once and the per-row trigger checks cost ten times the COPY itself. Their store (and
# upload) are locked or written in the same transaction by the one code path that writes them.
stock_levels = Table(
    "stock_levels",
    metadata,
    Column("store_id", Id, primary_key=True),
    Column("identifier", String(64), primary_key=True),
    Column("on_hand", Integer, nullable=False),
    Column("committed", Integer, nullable=False, default=0),
    Column("safety_stock", Integer, nullable=False, default=0),  # in force: the override, else the store's
    Column("safety_stock_override", Integer),  # set per product; null: follows stores.safety_stock
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("promotion_minor", BigInteger),
    Column("last_reported_on", Date, nullable=False),  # day granularity: a 15-minute re-upload rewrites nothing
    Column("expired", Boolean, nullable=False, default=False),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

# A store's last applied stock file (services/previous_feed.py): its rows are kept in storage
# (`previous/<store>/<upload>.arrow`) so the next file sends the database only what may change.
# Written in the transaction that applies the file; `event_watermark` is the last event id that
# transaction could see, so every level change since is an inventory.updated with a larger id.
previous_feeds = Table(
    "previous_feeds",
    metadata,
    Column("store_id", Id, primary_key=True),
    Column("upload_id", Id, nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
    Column("event_watermark", BigInteger, nullable=False),
    Column("means_available", Boolean, nullable=False),  # stores.feed_quantity_means when applied
)

# The ledger: append-only; replaying it per (store, identifier) gives on_hand and committed.
# Only its primary key is indexed: a first ingest appends a row per product, and a
# (store_id, identifier) index would cost 40% more on every such write. Add one with the first
# query that reads one product's history.
stock_movements = Table(
    "stock_movements",
    metadata,
    Column("id", Id, primary_key=True),
    Column("store_id", Id, nullable=False),
    Column("identifier", String(64), nullable=False),
    Column("reason", String(20), nullable=False),
    Column("on_hand_before", Integer, nullable=False),
    Column("on_hand_after", Integer, nullable=False),
    Column("committed_before", Integer, nullable=False),
    Column("committed_after", Integer, nullable=False),
    Column("upload_id", Id),
    Column("order_id", Id),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)


# --- orders ----------------------------------------------------------------------------------

customers = Table(
    "customers",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("email", String(320)),
    Column("name", String(200)),
    Column("external_id", String(100)),  # e.g. a marketplace's retailer id
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("organization_id", "email", name="uq_customers_organization_id_email"),
    UniqueConstraint("organization_id", "external_id", name="uq_customers_organization_id_external_id"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("external_id", String(64), nullable=False),
    Column("request_hash", String(64), nullable=False),  # a retried booking must match the first
    Column("status", String(20), nullable=False),
    Column("channel_type", String(20), nullable=False),
    Column("channel_name", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id")),
    Column("fulfilment_type", String(10), nullable=False),
    Column("fulfilment_store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("payment_type", String(20), nullable=False),
    Column("payment_status", String(20), nullable=False, default="pending"),
    Column("paid_at", UTCDateTime),
    Column("custom_invoice_number", String(100)),
    Column("dispatch_planned_at", UTCDateTime),
    Column("delivery_planned_at", UTCDateTime),
    Column("placed_at", UTCDateTime, nullable=False),
    Column("confirmed_at", UTCDateTime),
    Column("dispatched_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("cancelled_at", UTCDateTime),
    Column("cancellation_reason", String(500)),
    Column("restocked", Boolean),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("organization_id", "external_id", name="uq_orders_organization_id_external_id"),
    Index("ix_orders_customer_id_id", "customer_id", "id"),
)

order_lines = Table(
    "order_lines",
    metadata,
    Column("id", Id, primary_key=True),
    Column("order_id", Id, ForeignKey("orders.id"), nullable=False, index=True),
    Column("line_no", Integer, nullable=False),
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False),
    Column("identifier", String(64), nullable=False),  # canonical
    Column("identifier_given", String(64), nullable=False),  # as the client spelled it
    Column("quantity", Integer, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
)

# Answers to requests made with an Idempotency-Key: the same key and body get the same answer.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("scope", String(50), nullable=False),
    Column("key", String(255), nullable=False),
    Column("request_hash", String(64), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("organization_id", "scope", "key", name="uq_idempotency_keys_organization_id_scope_key"),
)


# --- FTP gateway and custom product data (products.csv) ---------------------------------------

# The organization's product catalog, from products.csv uploads of any of its stores: the last
# upload that describes a product wins. `identifier` is canonical, like stock_levels.identifier.
catalog_products = Table(
    "catalog_products",
    metadata,
    Column("organization_id", Id, ForeignKey("organizations.id"), primary_key=True),
    Column("identifier", String(64), primary_key=True),
    # products.csv requires brand, image_url, description and condition; a catalog import only a title
    Column("brand", String(200)),
    Column("title", String(500), nullable=False),
    Column("image_url", String(2000)),  # the main image: images[0]
    Column("description", Text),
    Column("link", String(2000)),
    Column("condition", String(20)),
    Column("category", String(750)),
    Column("age_group", String(20)),
    Column("gender", String(20)),
    Column("color", String(100)),
    Column("size", String(100)),
    Column("item_group_id", String(50)),
    Column("upload_id", Id),  # the upload that last described it
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    # from catalog imports (services/catalog_import.py); JSON lists and object
    Column("sku", String(64)),  # the product's SKU beside its barcode (the identifier when it has none)
    Column("categories", Text),  # JSON list of paths ("Books > Children"); category is the first
    Column("images", Text),  # JSON list of URLs; image_url is the first
    Column("attributes", Text),  # JSON object of key: scalar
    Column("import_id", Id),  # the catalog import that last described it
    # for searching (GET /v1/products), case-folded by services/catalog.py: the same on both engines
    Column("title_key", String(500)),
    Column("brand_key", String(200)),
    Column("categories_key", Text),  # "\n" + each case-folded path + "\n"
    Index("ix_catalog_products_organization_id_sku", "organization_id", "sku"),
    Index("ix_catalog_products_organization_id_brand_key", "organization_id", "brand_key"),
)

# Regional catalogs: a locale and a currency ("en-GB/GBP"), made by the first price imported for them.
catalogs = Table(
    "catalogs",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("locale", String(20), nullable=False),  # "en-GB": language, region
    Column("currency", String(3), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("organization_id", "locale", "currency", name="uq_catalogs_organization_id_locale_currency"),
)

# A product's price in a catalog (the organization is the catalog's).
catalog_prices = Table(
    "catalog_prices",
    metadata,
    Column("catalog_id", Id, ForeignKey("catalogs.id"), primary_key=True),
    Column("identifier", String(64), primary_key=True),
    Column("price_minor", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

# Catalog imports: a JSON or NDJSON document of products (kept in the file storage), processed
# by the workers like uploads (claimed under a lease, one organization's in the order received).
catalog_imports = Table(
    "catalog_imports",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("format", String(10), nullable=False),  # json | ndjson
    Column("path", String(1000), nullable=False),  # storage key of the document
    Column("size_bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("status", String(20), nullable=False),  # queued | processing | succeeded | failed
    Column("received_at", UTCDateTime, nullable=False, default=utcnow),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("worker_id", String(100)),
    Column("lease_until", UTCDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("total_count", Integer),  # set once the document is read
    Column("rejected_count", Integer, nullable=False, default=0),
    Column("created_count", Integer, nullable=False, default=0),
    Column("updated_count", Integer, nullable=False, default=0),
    Column("unchanged_count", Integer, nullable=False, default=0),
    Column("error", Text),  # why it failed
    Index("ix_catalog_imports_organization_id_id", "organization_id", "id"),
    Index("ix_catalog_imports_status", "status"),
)

catalog_import_rejections = Table(
    "catalog_import_rejections",
    metadata,
    Column("id", Id, primary_key=True),
    Column("import_id", Id, ForeignKey("catalog_imports.id"), nullable=False, index=True),
    Column("item", Integer, nullable=False),  # the item's index: in `products`, or its line (from 0) in NDJSON
    Column("identifier", String(64)),  # as canonical as it could be made, else as given
    Column("field", String(100), nullable=False),
    Column("reason", Text, nullable=False),
)


# --- availability: location groups and shipping methods ------------------------------------

# A group of fulfilment locations (a region, a channel) whose availability is summed; a store
# may be in several.
location_groups = Table(
    "location_groups",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    # the location_group.updated event of the last change of its stores: an increment asked for
    # with a cursor from before it would miss totals that changed by it (refused: export again)
    Column("stores_event_id", Id),
)

location_group_stores = Table(
    "location_group_stores",
    metadata,
    Column("group_id", Id, ForeignKey("location_groups.id"), primary_key=True),
    Column("store_id", Id, ForeignKey("stores.id"), primary_key=True, index=True),
)

shipping_methods = Table(
    "shipping_methods",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("min_days", Integer, nullable=False),
    Column("max_days", Integer, nullable=False),
    Column("countries", Text, nullable=False),  # JSON list of ISO 3166-1 alpha-2 codes
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)


# --- Events and webhooks ---------------------------------------------------------------------
# The outbox: events are written in the transaction of the change they describe, without a
# number; the sequencer numbers committed events afterwards (`sequence`, one numbering for all
# streams) so readers catch up by store or organization without skipping one. Deliveries are
# the work the webhook workers claim.

_NUMBERED_ONLY = {"sqlite_where": text("sequence IS NOT NULL"), "postgresql_where": text("sequence IS NOT NULL")}
events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("store_id", Id),
    Column("type", String(40), nullable=False),
    Column("sequence", BigInteger),  # set by the sequencer after commit
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("data", Text, nullable=False),  # JSON
    Column("change_count", Integer),
    # inventory.updated: the stock levels it reports as they were after the change, as JSON with
    # one array per column (services/events.py, CHANGE); written with the event, in one row.
    # PostgreSQL compresses it with lz4 (migration 0023): ~25 KB an ingest's event, 6x faster than pglz
    Column("changes", Text),
    Column("partner_id", Id, ForeignKey("partners.id")),  # set: the event is that partner's (store.connected)
    # The sequence indexes hold numbered events only (every reader asks for `sequence > n`): an
    # event is written unnumbered, and indexing its NULL three times was wasted (migration 0024).
    Index("uq_events_sequence", "sequence", unique=True, **_NUMBERED_ONLY),
    Index("ix_events_store_id_sequence", "store_id", "sequence", **_NUMBERED_ONLY),
    Index("ix_events_organization_id_sequence", "organization_id", "sequence", **_NUMBERED_ONLY),
    Index("ix_events_unsequenced", "id", sqlite_where=text("sequence IS NULL"), postgresql_where=text("sequence IS NULL")),
    Index("ix_events_occurred_at", "occurred_at"),
    # PostgreSQL keeps 30% of each page free (migration 0025) for the sequencer's update of each
    # event: on its own page it is logged as a difference, on a full one moved and logged whole.
    postgresql_with={"fillfactor": 70},
)
# What the sequence indexes hold. A query without a condition on `sequence` (max, min) names it,
# or SQLite cannot use them.
NUMBERED_EVENTS = events.c.sequence.is_not(None)

webhook_subscriptions = Table(
    "webhook_subscriptions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("partner_id", Id, ForeignKey("partners.id")),  # set: a partner's, for its one connected store
    Column("url", String(2000), nullable=False),
    Column("event_types", Text, nullable=False),  # JSON list
    Column("store_ids", Text),  # JSON list of store numbers; null: every store
    Column("description", String(500)),
    # true: each store's events go out one at a time in sequence order (a failing one holds back the later ones)
    Column("ordered", Boolean, nullable=False, default=False, server_default=false()),
    Column("status", String(20), nullable=False, default="active"),  # active | paused | disabled | deleted
    Column("disabled_reason", Text),
    Column("failing_since", UTCDateTime),
    Column("secret_salt", String(64), nullable=False),  # the secret is derived from it and the server secret
    Column("previous_secret_salt", String(64)),
    Column("previous_secret_expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, nullable=False),
    Column("subscription_id", Id, ForeignKey("webhook_subscriptions.id"), nullable=False),
    Column("event_id", Id, ForeignKey("events.id"), nullable=False),
    Column("status", String(20), nullable=False),  # pending | delivering | succeeded | failed | cancelled
    Column("attempts", Integer, nullable=False, default=0),
    # set while unfinished: when it is next due (while delivering: when its lease lapses); null once finished
    Column("next_attempt_at", UTCDateTime),
    Column("lease_until", UTCDateTime),
    Column("worker_id", String(100)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index("ix_webhook_deliveries_next_attempt_at", "next_attempt_at"),
    Index("ix_webhook_deliveries_subscription_id_id", "subscription_id", "id"),
    Index("ix_webhook_deliveries_event_id", "event_id"),
    # claiming: each subscription's due deliveries, and the few in flight (jobs/deliver.py)
    Index("ix_webhook_deliveries_subscription_id_next_attempt_at", "subscription_id", "next_attempt_at"),
    Index(
        "ix_webhook_deliveries_delivering",
        "subscription_id",
        postgresql_where=text("status = 'delivering'"),
        sqlite_where=text("status = 'delivering'"),
    ),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("delivery_id", Id, ForeignKey("webhook_deliveries.id"), nullable=False, index=True),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("latency_ms", Integer),
    Column("response_excerpt", Text),
    Column("error", Text),
    Column("worker_id", String(100)),
)


# --- accounts and OAuth (partner onboarding) ------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), index=True),  # a retailer's user
    Column("partner_id", Id, ForeignKey("partners.id")),  # or a partner's user (organization_id null)
    Column("email", String(320), nullable=False, unique=True),  # stored lower-cased
    Column("password_hash", String(200), nullable=False),  # Argon2id
    Column("role", String(20), nullable=False, default="staff"),  # owner | staff
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

partners = Table(
    "partners",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("client_secret_hash", String(64)),  # none: a public client (PKCE only)
    Column("redirect_uris", Text, nullable=False),  # JSON list, matched exactly
    Column("scopes", Text, nullable=False),  # space-separated scopes it may ask for
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("id", Id, primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("partner_id", Id, ForeignKey("partners.id"), nullable=False),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scope", Text, nullable=False),
    Column("code_challenge", String(128)),
    Column("code_challenge_method", String(10)),
    Column("family", String(32), nullable=False),  # the tokens it is exchanged for
    Column("expires_at", UTCDateTime, nullable=False),
    Column("used_at", UTCDateTime),
)

store_connections = Table(
    "store_connections",
    metadata,
    Column("id", Id, primary_key=True),
    Column("partner_id", Id, ForeignKey("partners.id"), nullable=False),
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False, index=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("partner_store_id", String(200), nullable=False),  # the partner's own id for the store
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("partner_id", "store_id", name="uq_store_connections_partner_store"),
    UniqueConstraint("partner_id", "partner_store_id", name="uq_store_connections_partner_store_id"),
)


# --- mail --------------------------------------------------------------------------------------
# Notification mails, written in the transaction of the change they tell of (an outbox) and sent
# by the workers, claimed with a lease like webhook deliveries. `dedupe_key` makes a mail once
# only (e.g. one status mail per store per day). Its text is rendered when sent (jobs/mail.py).

mail_outbox = Table(
    "mail_outbox",
    metadata,
    Column("id", Id, primary_key=True),
    Column("dedupe_key", String(200), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),  # store_created | store_connected | first_upload | store_status
    Column("organization_id", Id, nullable=False),
    Column("store_id", Id, nullable=False),
    Column("partner_id", Id),  # set: to that partner's users; else to the organization's
    Column("data", Text, nullable=False),  # JSON
    Column("status", String(20), nullable=False),  # pending | sending | sent | failed | skipped
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),  # set while unfinished (while sending: when the lease lapses)
    Column("lease_until", UTCDateTime),
    Column("worker_id", String(100)),
    Column("recipients", Text),  # as sent
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("sent_at", UTCDateTime),
    Index("ix_mail_outbox_next_attempt_at", "next_attempt_at"),
)


# --- inventory feeds (push and pull; Jetti's dialect too) ---------------------------------------
# A feed belongs to a store. Pushed items are kept per feed by the sender's externalId and
# connect to a product (a canonical identifier) by SKU, barcode or by hand; a pull feed is
# fetched on a schedule by the workers (next_fetch_at, lease) and each document becomes an upload.

dropship_providers = Table(
    "dropship_providers",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False, index=True),
    Column("store_id", Id, ForeignKey("stores.id")),  # the store its feeds supply, when named
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
)

feeds = Table(
    "feeds",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, ForeignKey("organizations.id"), nullable=False),
    Column("store_id", Id, ForeignKey("stores.id"), nullable=False, index=True),
    Column("provider_id", Id, ForeignKey("dropship_providers.id")),
    Column("name", String(200), nullable=False),
    Column("kind", String(10), nullable=False),  # push | pull
    Column("auto_connect", String(20), nullable=False),  # by_sku | by_barcode | off
    Column("sku_match", String(20), nullable=False),  # exact | case_insensitive
    Column("source_url", String(2000)),  # pull: without credentials
    Column("credentials_sealed", Text),  # pull: {"username", "password"} sealed (services/vault.py)
    Column("format", String(10)),  # pull: csv | xlsx | xml | json
    Column("mapping", Text),  # pull, xml/json: JSON {"items", "fields", "namespaces"}
    Column("fetch_frequency", Integer, nullable=False),  # minutes
    Column("delta", Boolean, nullable=False),
    Column("missing_items", String(20), nullable=False),  # full snapshots: expire | out_of_stock
    Column("enabled", Boolean, nullable=False),
    Column("next_fetch_at", UTCDateTime, index=True),  # pull: when it is next due (while fetching: when the lease lapses)
    Column("lease_until", UTCDateTime),
    Column("worker_id", String(100)),
    Column("failures", Integer, nullable=False, default=0, server_default=text("0")),  # fetches failed in a row
    Column("etag", String(500)),
    Column("last_modified", String(100)),
    Column("last_fetch_at", UTCDateTime),
    Column("last_fetch_status", String(20)),  # fetched | not_modified | failed
    Column("last_error", Text),
    Column("last_upload_id", Id),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
)

feed_items = Table(
    "feed_items",
    metadata,
    Column("id", Id, primary_key=True),
    Column("feed_id", Id, ForeignKey("feeds.id"), nullable=False),
    Column("organization_id", Id, nullable=False),
    Column("store_id", Id, nullable=False),
    Column("external_id", String(255), nullable=False),
    Column("vendor_sku", String(255)),
    Column("barcode", String(64)),
    Column("sku_folded", String(255)),  # the SKU as an order line would name it, lower-cased
    Column("quantity", Integer, nullable=False),
    Column("price_minor", BigInteger),
    Column("currency", String(3)),
    Column("identifier", String(64)),  # the product it is connected to (canonical); null: unmapped
    Column("connected_by", String(10)),  # sku | barcode | manual
    Column("status", String(10), nullable=False),  # applied | unmapped | held
    Column("reason", Text),  # why unmapped or held
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow),
    UniqueConstraint("feed_id", "external_id", name="uq_feed_items_feed_id_external_id"),
    Index("ix_feed_items_store_id_sku_folded", "store_id", "sku_folded"),
    Index("ix_feed_items_feed_id_status", "feed_id", "status"),
)

# A pushed batch of up to 50 items, accepted at once and applied by the workers (leases).
feed_batches = Table(
    "feed_batches",
    metadata,
    Column("id", Id, primary_key=True),
    Column("organization_id", Id, nullable=False),
    Column("store_id", Id, nullable=False),
    Column("feed_id", Id, ForeignKey("feeds.id"), nullable=False),
    Column("status", String(20), nullable=False),  # received | processing | done | failed
    Column("items", Text, nullable=False),  # JSON list, as validated when received
    Column("result", Text),  # JSON list: each item's outcome
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_until", UTCDateTime),
    Column("worker_id", String(100)),
    Column("error", Text),
    Column("received_at", UTCDateTime, nullable=False, default=utcnow),
    Column("finished_at", UTCDateTime),
    Index("ix_feed_batches_status", "status"),
    Index("ix_feed_batches_feed_id_id", "feed_id", "id"),
)

# Item updates per organization and UTC day, against organizations.daily_item_limit.
item_update_counts = Table(
    "item_update_counts",
    metadata,
    Column("organization_id", Id, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("count", BigInteger, nullable=False),
)

# --- rate limits (services/rate_limits.py) -----------------------------------------------------
# Fixed-window request counters shared by every API node: one row per (limited key, window),
# counted with one UPSERT per request; windows that have passed are deleted by the sweep.
# UNLOGGED on PostgreSQL (migration 0020): no WAL flush per request; a crash empties it.

rate_limit_counters = Table(
    "rate_limit_counters",
    metadata,
    Column("key", String(80), primary_key=True),  # "token:<HMAC of the token>" or "address:<ip>"
    Column("window_start", BigInteger, primary_key=True),  # Unix seconds, a multiple of the window's length
    Column("count", Integer, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # Unix seconds: the window's end
    Index("ix_rate_limit_counters_expires_at", "expires_at"),
)
