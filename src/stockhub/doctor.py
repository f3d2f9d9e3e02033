"""`stockhub doctor`: check an install and say in plain words what is wrong.

Each check gives `ok`, `warn` (works, but look at it) or `fail` (stockhub will not work as set
up); the command exits 1 when any check fails. Checks, in order (a failed one skips those that
need it): settings (they parse; the server secret is there), database (connects; the schema is
at the newest migration), storage (a probe file is written, read back and deleted), FTP
certificate (exists, the key matches, not expired, names the host POS systems connect to) and
clock (this machine's against the database's `now()`).
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from pydantic import ValidationError

CLOCK_SKEW_WARN_SECONDS = 2.0
CERT_EXPIRY_WARN_DAYS = 14


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail
    message: str


def run_checks(make_settings=None) -> list[Check]:
    import logging

    from stockhub.settings import Settings

    logging.getLogger("alembic").setLevel(logging.WARNING)  # reading the schema's revision is no news
    found: list[Check] = []
    try:
        settings = (make_settings or Settings)()
    except ValidationError as error:
        problems = "; ".join(f"STOCKHUB_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in error.errors())
        return [Check("settings", "fail", f"the settings do not parse: {problems}")]
    except Exception as error:  # an unreadable stockhub.toml
        return [Check("settings", "fail", f"the settings cannot be read: {error}")]
    found += _settings(settings)
    if any(c.status == "fail" for c in found):
        return found
    from stockhub.db.engine import make_engine

    try:
        engine = make_engine(settings.db_url)
    except Exception as error:
        return found + [Check("database", "fail", f"STOCKHUB_DATABASE_URL is not usable: {error}")]
    try:
        database = _database(engine, settings)
        found += database
        found += _storage(settings)
        found += _ftp_certificate(settings)
        if database[0].status == "ok":  # the database answers (whatever its schema)
            found += _clock(engine)
    finally:
        engine.dispose()
    return found


def _settings(settings) -> list[Check]:
    checks = [Check("settings", "ok", "the settings parse")]
    postgres = settings.db_url.startswith("postgresql")
    path = settings.data_dir / "secret_key"
    if settings.secret_key:
        if len(settings.secret_key) < 32:
            checks.append(Check("secret", "warn", "STOCKHUB_SECRET_KEY is shorter than 32 characters: make a longer random one before handing out keys"))
        else:
            checks.append(Check("secret", "ok", "the server secret is set (STOCKHUB_SECRET_KEY)"))
    elif path.exists():
        try:
            if not path.read_text().strip():
                checks.append(Check("secret", "fail", f"{path} is empty: restore the install's secret (every id, key and token depends on it)"))
            elif postgres:
                checks.append(
                    Check("secret", "warn", f"the server secret is in {path}: every node of a fleet needs the same one, set STOCKHUB_SECRET_KEY on all")
                )
            else:
                checks.append(Check("secret", "ok", f"the server secret is in {path}"))
        except OSError as error:
            checks.append(Check("secret", "fail", f"the server secret {path} cannot be read: {error.strerror}"))
    elif postgres:
        checks.append(
            Check("secret", "fail", "no server secret: set STOCKHUB_SECRET_KEY (the same on every node) — else each node would make its own and refuse the others' keys")
        )
    else:
        checks.append(Check("secret", "warn", f"no server secret yet: the first start makes {path}; keep it for the install's life"))
    if settings.smtp_host and settings.smtp_username and not settings.smtp_password:
        checks.append(Check("mail", "warn", "STOCKHUB_SMTP_USERNAME is set without STOCKHUB_SMTP_PASSWORD"))
    return checks


def _database(engine, settings) -> list[Check]:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from stockhub.db.migrate import alembic_config

    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [Check("database", "fail", f"cannot reach the database at {where}: {reason}")]
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    checks = [Check("database", "ok", f"the database at {where} answers")]
    if not current:
        checks.append(Check("migrations", "fail", "the database has no stockhub schema: run `stockhub migrate`"))
    elif current == heads:
        checks.append(Check("migrations", "ok", f"the schema is at the newest migration ({', '.join(sorted(heads))})"))
    elif current - heads and not _known(current):
        checks.append(
            Check("migrations", "fail", f"the schema is at {', '.join(sorted(current))}, which this stockhub does not know: a newer version migrated it")
        )
    else:
        checks.append(
            Check("migrations", "fail", f"the schema is at {', '.join(sorted(current))}, not the newest ({', '.join(sorted(heads))}): run `stockhub migrate`")
        )
    return checks


def _known(revisions: set[str]) -> bool:
    from alembic.script import ScriptDirectory

    from stockhub.db.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    try:
        return all(script.get_revision(r) is not None for r in revisions)
    except Exception:
        return False


def _storage(settings) -> list[Check]:
    from stockhub.storage import from_url

    try:
        storage = from_url(settings.storage_url, settings.data_dir)
    except ValueError as error:
        return [Check("storage", "fail", str(error))]
    key = f"doctor/probe-{secrets.token_hex(8)}"
    probe = secrets.token_bytes(64)
    where = settings.storage_url or f"the data folder {settings.data_dir.resolve()}"
    try:
        storage.put(key, probe)
    except Exception as error:
        return [Check("storage", "fail", f"cannot write a file to {where}: {_say(error)}")]
    try:
        if storage.read_bytes(key) != probe:
            return [Check("storage", "fail", f"a file written to {where} read back different")]
    except Exception as error:
        return [Check("storage", "fail", f"wrote a file to {where} but cannot read it back: {_say(error)}")]
    try:
        storage.delete(key)
        if storage.stat(key) is not None:
            return [Check("storage", "fail", f"a file deleted from {where} is still there")]
    except Exception as error:
        return [Check("storage", "fail", f"cannot delete a file from {where}: {_say(error)}")]
    return [Check("storage", "ok", f"files can be written, read and deleted in {where}")]


def _ftp_certificate(settings, now: datetime | None = None) -> list[Check]:
    from cryptography import x509

    if not settings.ftp_enabled:
        return []
    cert_path = settings.ftp_tls_cert
    if cert_path is None:
        if settings.ftp_tls_required:
            return [Check("ftp certificate", "fail", "STOCKHUB_FTP_TLS_REQUIRED is set but there is no STOCKHUB_FTP_TLS_CERT: no one can log in")]
        return [Check("ftp certificate", "warn", "no STOCKHUB_FTP_TLS_CERT: FTP logins (upload keys) and files cross the network unencrypted")]
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except FileNotFoundError:
        return [Check("ftp certificate", "fail", f"the certificate file {cert_path} does not exist")]
    except (OSError, ValueError) as error:
        return [Check("ftp certificate", "fail", f"{cert_path} is not a readable PEM certificate: {_say(error)}")]
    checks = []
    try:
        from stockhub.gateways.ftp_tls import server_context

        server_context(cert_path, settings.ftp_tls_key)
    except Exception as error:
        checks.append(Check("ftp certificate", "fail", f"the certificate and key do not make a TLS server: {_say(error)} (does the key match the certificate?)"))
    now = now or datetime.now(UTC)
    ends, begins = cert.not_valid_after_utc, cert.not_valid_before_utc
    if ends <= now:
        checks.append(Check("ftp certificate", "fail", f"{cert_path} expired on {ends:%Y-%m-%d}: POS systems that check it will refuse FTPS"))
    elif begins > now:
        checks.append(Check("ftp certificate", "fail", f"{cert_path} is not valid before {begins:%Y-%m-%d %H:%M} UTC (is this machine's clock right?)"))
    elif ends - now < timedelta(days=CERT_EXPIRY_WARN_DAYS):
        checks.append(Check("ftp certificate", "warn", f"{cert_path} expires on {ends:%Y-%m-%d}, in {(ends - now).days} days: renew it"))
    host = _ftp_public_host(settings)
    names = _certificate_names(cert)
    if host is None:
        checks.append(Check("ftp certificate", "warn", "cannot tell which host name POS systems use: set STOCKHUB_PUBLIC_URL or STOCKHUB_FTP_HOST to check the certificate names it"))
    elif not any(_matches(name, host) for name in names):
        checks.append(
            Check("ftp certificate", "fail" if not _local(host) else "warn", f"{cert_path} names {', '.join(names) or 'no host'}, not {host}: clients that check the name will refuse it")
        )
    if not any(c.status == "fail" for c in checks):
        checks.append(Check("ftp certificate", "ok", f"{cert_path} is valid until {ends:%Y-%m-%d}" + (f" and names {host}" if host else "")))
    return checks


def _ftp_public_host(settings) -> str | None:
    if settings.public_url:
        return urlsplit(settings.public_url).hostname
    for host in (settings.ftp_masquerade_address, settings.ftp_host, settings.host):
        if host and host not in ("0.0.0.0", "::"):
            return host
    return None


def _certificate_names(cert) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return [*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        return [a.value for a in cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)]


def _matches(name: str, host: str) -> bool:
    name, host = name.lower().rstrip("."), host.lower().rstrip(".")
    if name.startswith("*."):
        return host.count(".") == name.count(".") and host.endswith(name[1:])
    return name == host


def _local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _clock(engine) -> list[Check]:
    from sqlalchemy import text

    if engine.dialect.name != "postgresql":
        return [Check("clock", "ok", "SQLite: the database's clock is this machine's")]
    with engine.connect() as conn:
        before = time.time()
        theirs = conn.execute(text("SELECT now()")).scalar_one()
        after = time.time()
    skew = theirs.timestamp() - (before + after) / 2
    if abs(skew) > CLOCK_SKEW_WARN_SECONDS:
        side = "ahead of" if skew > 0 else "behind"
        return [
            Check("clock", "warn", f"the database's clock is {abs(skew):.1f} s {side} this machine's: leases, upload URL expiry and rate-limit windows assume synchronised clocks (run NTP)")
        ]
    return [Check("clock", "ok", f"this machine's clock and the database's agree within {abs(skew):.2f} s")]


def _say(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
