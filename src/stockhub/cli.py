"""The `stockhub` command: serve, administer tenants, import a file."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import click
from sqlalchemy.exc import OperationalError

from stockhub import ids, representations
from stockhub.errors import NotFound, Problem, ServiceError
from stockhub.services import tenancy, uploads
from stockhub.services.context import Hub
from stockhub.settings import Settings


def _hub(migrate: bool = True) -> Hub:
    hub = Hub.from_settings(Settings())
    if migrate:
        from stockhub.db.migrate import upgrade

        try:
            upgrade(hub.engine, hub.storage.local_folder())
        except OperationalError as error:  # a database that does not answer: say which, without a traceback
            raise click.ClickException(f"cannot reach the database {_database()}: {str(error.orig).strip().splitlines()[0]}") from None
    return hub


def _emit(as_json: bool, data: dict, text: str) -> None:
    click.echo(json.dumps(data) if as_json else text)


def _database() -> str:
    """The database the command works on, as its URL without a password (errors name it)."""
    from sqlalchemy.engine import make_url

    return make_url(Settings().db_url).render_as_string(hide_password=True)


def _table(rows: list[dict], columns: list[str], as_json: bool, empty: str) -> None:
    """Rows as an aligned table, or with --json as a JSON list."""
    if as_json:
        click.echo(json.dumps(rows))
        return
    if not rows:
        click.echo(empty)
        return

    def cell(value) -> str:
        return "" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    cells = [columns] + [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for n, line in enumerate(cells):
        text = "  ".join(value.ljust(width) for value, width in zip(line, widths, strict=True)).rstrip()
        click.echo(click.style(text, bold=True) if n == 0 and sys.stdout.isatty() else text)


def _record(record: dict, as_json: bool) -> None:
    """One record as `name  value` lines, or with --json as a JSON object."""
    if as_json:
        click.echo(json.dumps(record))
        return
    width = max(map(len, record))
    for name, value in record.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            click.echo(f"{name}:")
            for item in value:
                click.echo("  " + "  ".join(f"{k} {v}" for k, v in item.items()))
        else:
            shown = "" if value is None else ", ".join(map(str, value)) if isinstance(value, list) else value
            click.echo(f"{name.ljust(width)}  {shown}")


class _Group(click.Group):
    """Turns a service's error into a one-line message and exit code 1, never a traceback. What
    was not found is said to be missing from the database the command looked in."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ServiceError, Problem) as problem:
            details = "".join(f"\n  {e.field}: {e.message}" for e in problem.errors)
            where = f" in {_database()}" if isinstance(problem, NotFound) else ""
            click.echo(f"error: {problem.detail or problem.title}{where}{details}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="stockhub")
def main() -> None:
    """stockhub: stock-and-order hub for physical retailers."""
    from stockhub.logs import configure

    try:
        settings = Settings()
        configure(settings.log_format, settings.log_level)
    except Exception:  # settings that do not parse: `stockhub doctor` says why; the command will too
        configure()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # db/migrate.py says in one line when it migrates


@main.command()
@click.option("--host", default=None, help="interface to listen on (default 127.0.0.1, setting STOCKHUB_HOST)")
@click.option("--port", default=None, type=int, help="HTTP port (default 8000, setting STOCKHUB_PORT)")
@click.option("--demo", is_flag=True, help="also create a demo organization with two stores and print how to use it; allows webhook receivers on loopback")
@click.option("--workers", "api_workers", default=None, type=click.IntRange(min=1),
              help="HTTP API processes (default: the number of cores, setting STOCKHUB_WORKERS); 1 serves everything in one process")
@click.option("--jobs/--no-jobs", default=True, help="run the background workers (uploads, events, deliveries, mail, sweeps) in this server")
@click.option("--no-workers", "no_jobs", is_flag=True, hidden=True, help="the former spelling of --no-jobs")
@click.option("--ftp-port", default=None, type=int, help="FTP gateway port (default 2121, setting STOCKHUB_FTP_PORT)")
@click.option("--ftp/--no-ftp", "ftp", default=None, help="run the FTP gateway in this process (setting STOCKHUB_FTP_ENABLED)")
def serve(host: str | None, port: int | None, demo: bool, api_workers: int | None, jobs: bool, no_jobs: bool, ftp_port: int | None, ftp: bool | None) -> None:
    """Run the HTTP API, the FTP gateway and the background workers.

    With several API processes (--workers, default the core count) this process supervises
    them, and runs the background workers and the FTP gateway itself, once. SIGTERM or Ctrl-C:
    requests in flight finish, work in hand is finished or given back (SHUTDOWN_GRACE_SECONDS)."""
    from stockhub.api.server import http_server
    from stockhub.jobs.worker import Worker

    hub = _hub()
    host = host or hub.settings.host
    port = port or hub.settings.port
    count = api_workers or hub.settings.workers or os.cpu_count() or 1
    listening = _http_socket(host, port)  # both ports are taken before anything changes: a busy one fails the start
    gateway = _ftp_gateway(hub, host, ftp_port) if (hub.settings.ftp_enabled if ftp is None else ftp) else None
    if demo:
        hub.settings.webhook_allow_loopback = True  # so a receiver on this machine can subscribe
    processes = None
    if count > 1:  # started first: they import while the demo is made, and accept once told to
        from stockhub.api.processes import ApiProcesses, listen_for_wake_ups

        listening.listen(2048)
        processes = ApiProcesses(listening, count, listen_for_wake_ups(hub), host=host, port=port, allow_loopback=hub.settings.webhook_allow_loopback)
        processes.start()
    worker = Worker(hub)
    run_jobs = jobs and not no_jobs
    grace = hub.settings.shutdown_grace_seconds
    stopping_since: list[float] = []
    try:
        if demo:
            from stockhub.demo import create_demo

            click.echo(create_demo(hub, f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}", gateway and gateway.port))
        if run_jobs:
            worker.start()
        if gateway:
            gateway.start()
        if processes is not None:
            _say_when_ready(lambda: _answers(host, port), lambda: False, host, port, gateway, hub.settings.data_dir)
            code = processes.run()  # until SIGTERM or Ctrl-C; each API process finishes its requests
            stopping_since.append(time.monotonic())
            if gateway:
                gateway.stop(timeout=0)
            worker.stop()
            if code:
                sys.exit(code)
            return
        server = http_server(hub, host, port, log_level="info", log_config=None, proxy_headers=True, timeout_graceful_shutdown=grace)
        stop_server = server.handle_exit

        def on_signal(sig, frame):  # SIGTERM or Ctrl-C: stop taking work at once, while uvicorn finishes its requests
            stopping_since.append(time.monotonic())
            if gateway:
                gateway.stop(timeout=0)
            worker.stop()
            stop_server(sig, frame)

        server.handle_exit = on_signal
        # uvicorn raises the signal again once it has stopped: let that find a handler that only returns,
        # so the work below is given back before the process ends.
        signal.signal(signal.SIGTERM, lambda *_: None)
        _say_when_ready(lambda: server.started, lambda: server.should_exit, host, port, gateway, hub.settings.data_dir)
        server.run(sockets=[listening])
        if not server.started:  # uvicorn has logged why
            sys.exit(3)
    finally:
        if processes is not None:
            processes.stop()
        if gateway:
            gateway.stop()
        if run_jobs:  # what is left of the grace period, counted from the signal
            worker.shutdown(grace - (time.monotonic() - stopping_since[0]) if stopping_since else grace)
        else:
            worker.stop()


def _answers(host: str, port: int) -> bool:
    """Whether the API answers /healthz (several API processes: any of them)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/healthz", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False

def _say_when_ready(started, stopped, host: str, port: int, gateway, data_dir: Path) -> None:
    """One line once the API answers (`started()`; `stopped()`: give up): where, and how to stop."""
    import threading

    def wait() -> None:
        while not started() and not stopped():
            time.sleep(0.05)
        if not stopped():
            ftp = f", FTP{'/FTPS' if gateway.tls else ''} on port {gateway.port}" if gateway else ""
            logging.getLogger("stockhub").info(
                "stockhub is ready: http://%s:%s%s; data in %s. Ctrl-C stops it.", host, port, ftp, data_dir.resolve()
            )

    threading.Thread(target=wait, daemon=True, name="stockhub-ready").start()


def _http_socket(host: str, port: int) -> socket.socket:
    sock = None
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        # With its protocol (TCP), not 0: asyncio turns Nagle off only on connections of a TCP-protocol
        # socket, and with Nagle on each answer's body waited ~40 ms for the client's delayed ACK.
        sock = socket.socket(family, kind, protocol)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        return sock
    except OSError as error:
        if sock is not None:
            sock.close()
        raise click.ClickException(f"the HTTP server cannot start on {host}:{port}: {error}") from None


def _ftp_gateway(hub: Hub, host: str | None, port: int | None):
    from OpenSSL import SSL

    from stockhub.gateways.ftp import FtpGateway

    if hub.settings.ftp_tls_cert is None:  # FTPS on by default: a self-signed pair made once in the data folder
        from stockhub.gateways.ftp_tls import ensure_self_signed

        folder = hub.settings.data_dir / "tls"
        hub.settings.ftp_tls_cert, hub.settings.ftp_tls_key = ensure_self_signed(folder)
        logging.getLogger("stockhub").info(
            "FTPS with the self-signed certificate in %s (clients must accept it, e.g. curl -k); "
            "set STOCKHUB_FTP_TLS_CERT and STOCKHUB_FTP_TLS_KEY for your own",
            folder.resolve(),
        )
    try:
        return FtpGateway(hub, host=hub.settings.ftp_host or host, port=port)
    except (OSError, ValueError, SSL.Error) as error:  # port taken, bad settings, unreadable certificate
        raise click.ClickException(f"the FTP gateway cannot start: {error}") from None


@main.command()
@click.option("--host", default=None, help="interface to listen on (default STOCKHUB_FTP_HOST, else STOCKHUB_HOST)")
@click.option("--port", default=None, type=int, help="FTP port (default 2121, setting STOCKHUB_FTP_PORT)")
def ftp(host: str | None, port: int | None) -> None:
    """Run only the FTP/FTPS gateway (uploads go to the workers through the database)."""
    gateway = _ftp_gateway(_hub(), host, port)
    thread = gateway.start()
    _until_stopped()
    gateway.stop()
    thread.join(10)


@main.command()
def worker() -> None:
    """Run only the background workers (scaled-out deployments). SIGTERM: finish or give back the work in hand."""
    from stockhub.jobs.worker import Worker

    hub = _hub()
    running = Worker(hub)
    running.start()
    _until_stopped()
    running.shutdown(hub.settings.shutdown_grace_seconds)


def _until_stopped() -> None:
    """Wait for SIGTERM or SIGINT (Ctrl-C)."""
    import threading

    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(1):
        pass
    logging.getLogger("stockhub").info("stopping")


@main.command()
def doctor() -> None:
    """Check the settings, database, file storage, FTP certificate and clock; say what is wrong."""
    from stockhub.doctor import run_checks

    checks = run_checks()
    width = max(len(c.name) for c in checks)
    for check in checks:
        click.echo(f"{check.status:<4}  {check.name:<{width}}  {check.message}")
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        click.echo(f"\n{len(failed)} problem{'s' if len(failed) > 1 else ''} to fix before stockhub runs as set up.", err=True)
        sys.exit(1)
    click.echo("\nnothing is wrong" + (" (see the warnings)" if any(c.status == "warn" for c in checks) else ""))


@main.command()
def migrate() -> None:
    """Bring the database to the newest schema."""
    _hub()
    click.echo("database is up to date")


@main.group()
def org() -> None:
    """Organizations."""


@org.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def org_create(name: str, as_json: bool) -> None:
    made = tenancy.create_organization(_hub(), name)
    _emit(as_json, {"id": made.id}, f"organization {made.id}")


@org.command("list")
@click.option("--json", "as_json", is_flag=True)
def org_list(as_json: bool) -> None:
    """Every organization, with its number of brands and stores."""
    from stockhub.services import directory

    rows = [representations.organization(row) for row in directory.list_organizations(_hub())]
    _table(rows, ["id", "name", "brands", "stores", "created_at"], as_json, f"no organizations in {_database()}")


@org.command("show")
@click.argument("org_id")
@click.option("--json", "as_json", is_flag=True)
def org_show(org_id: str, as_json: bool) -> None:
    from stockhub.services import directory

    _record(representations.organization(directory.get_organization(_hub(), org_id)), as_json)
@org.command("set-limit")
@click.argument("org_id")
@click.option("--daily-items", required=True, help="item updates per UTC day (feeds and files), or 'none' for the setting's default")
def org_set_limit(org_id: str, daily_items: str) -> None:
    """The organization's plan limit of item updates per day."""
    from stockhub.services import item_limits

    if daily_items != "none" and not (daily_items.isdigit() and 0 < int(daily_items) < 2**31):
        raise click.BadParameter("a whole number of items, or 'none'", param_hint="--daily-items")
    limit = None if daily_items == "none" else int(daily_items)
    item_limits.set_limit(_hub(), org_id, limit)
    click.echo(f"organization {org_id}: {'the default daily limit' if limit is None else f'{limit:,} item updates a day'}")


@main.group()
def brand() -> None:
    """Brands."""


@brand.command("create")
@click.option("--org", "org_id", required=True)
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def brand_create(org_id: str, name: str, as_json: bool) -> None:
    made = tenancy.create_brand_for(_hub(), org_id, name)
    _emit(as_json, {"id": made.id}, f"brand {made.id}")


@brand.command("list")
@click.option("--org", "org_id", default=None, help="only this organization's")
@click.option("--json", "as_json", is_flag=True)
def brand_list(org_id: str | None, as_json: bool) -> None:
    from stockhub.services import directory

    rows = [representations.brand(row) for row in directory.list_brands(_hub(), org_id)]
    _table(rows, ["id", "organization_id", "name", "created_at"], as_json, "no brands")


@brand.command("show")
@click.argument("brand_id")
@click.option("--json", "as_json", is_flag=True)
def brand_show(brand_id: str, as_json: bool) -> None:
    from stockhub.services import directory

    _record(representations.brand(directory.get_brand(_hub(), brand_id)), as_json)


@main.group()
def store() -> None:
    """Stores and their upload keys."""


@store.command("create")
@click.option("--brand", "brand_id", required=True)
@click.option("--country", required=True, help="ISO 3166-1 alpha-2, e.g. GB")
@click.option("--currency", default=None, help="ISO 4217; default: the country's")
@click.option("--timezone", default=None, help="IANA name; default: the country's when it has one")
@click.option("--address-line1", "--address", "address_line1", default=None, help="street and number")
@click.option("--address-line2", default=None)
@click.option("--city", default=None)
@click.option("--postal-code", "--postcode", "postal_code", default=None)
@click.option("--state", default=None, help="region, county or province")
@click.option("--latitude", type=float, default=None, help="-90 to 90")
@click.option("--longitude", type=float, default=None, help="-180 to 180")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def store_create(brand_id: str, name: str, as_json: bool, **fields) -> None:
    data = {"name": name} | {k: v for k, v in fields.items() if v is not None}
    made = tenancy.create_store_for(_hub(), brand_id, data)
    _emit(as_json, {"id": made.id, "upload_key": made.secret}, f"store {made.id}\nupload key {made.secret}  (shown once)")


@store.command("list")
@click.option("--org", "org_id", default=None, help="only this organization's")
@click.option("--brand", "brand_id", default=None, help="only this brand's")
@click.option("--json", "as_json", is_flag=True)
def store_list(org_id: str | None, brand_id: str | None, as_json: bool) -> None:
    """Stores and their status (upload keys are never shown again: `store rotate-key` makes a new one)."""
    from stockhub.services import directory

    rows = [representations.store_with_organization(row) for row in directory.list_stores(_hub(), org_id, brand_id)]
    _table(rows, ["id", "organization_id", "brand_id", "name", "city", "country", "status"], as_json, "no stores")


@store.command("show")
@click.argument("store_id")
@click.option("--json", "as_json", is_flag=True)
def store_show(store_id: str, as_json: bool) -> None:
    from stockhub.services import directory

    row, connected = directory.get_store(_hub(), store_id)
    partners = [{"client_id": ids.encode("partner", c.partner_id), "name": c.name, "partner_store_id": c.partner_store_id} for c in connected]
    _record(representations.store_with_organization(row) | {"partners": partners}, as_json)


@store.command("rotate-key")
@click.argument("store_id")
@click.option("--json", "as_json", is_flag=True)
def store_rotate_key(store_id: str, as_json: bool) -> None:
    key = tenancy.rotate_upload_key(_hub(), None, store_id)
    _emit(as_json, {"id": store_id, "upload_key": key}, f"store {store_id}\nupload key {key}  (shown once)")


@store.command("update")
@click.argument("store_id")
@click.option("--name", default=None)
@click.option("--country", default=None)
@click.option("--address-line1", "address_line1", default=None)
@click.option("--address-line2", default=None)
@click.option("--city", default=None)
@click.option("--postal-code", "postal_code", default=None)
@click.option("--state", default=None)
@click.option("--latitude", type=float, default=None, help="-90 to 90")
@click.option("--longitude", type=float, default=None, help="-180 to 180")
@click.option("--json", "as_json", is_flag=True)
def store_update(store_id: str, as_json: bool, **fields) -> None:
    """Change a store's details: its address and coordinates (pickup and delivery options use them)."""
    hub = _hub()
    changes = tenancy.validated(tenancy.StoreChanges, {k: v for k, v in fields.items() if v is not None})
    updated = tenancy.update_store(hub, tenancy.organization_of_store(hub, store_id), store_id, changes)
    _emit(as_json, representations.store(updated), f"store {store_id} updated")


@store.command("safety-stock")
@click.argument("store_id")
@click.argument("quantity")
@click.option("--product", "identifier", default=None, help="this product's own (QUANTITY 'default': follow the store's)")
@click.option("--json", "as_json", is_flag=True)
def store_safety_stock(store_id: str, quantity: str, identifier: str | None, as_json: bool) -> None:
    """Units kept back from sale: the store's default, or with --product one product's own."""
    from stockhub.services import safety_stock

    model = safety_stock.ProductSafetyStock if identifier else safety_stock.StoreSafetyStock
    given = None if identifier and quantity == "default" else int(quantity) if quantity.lstrip("-").isdigit() else quantity
    body = tenancy.validated(model, {"safety_stock": given})
    if identifier:
        level = representations.stock(safety_stock.set_product(_hub(), None, store_id, identifier, body.safety_stock))
        _emit(as_json, level, f"{identifier} at {store_id}: safety stock {level['safety_stock']}, available {level['available']}")
    else:
        store, changed = safety_stock.set_store_default(_hub(), None, store_id, body.safety_stock)
        got = representations.store(store) | {"products_changed": changed}
        _emit(as_json, got, f"store {store_id}: safety stock {got['safety_stock']} ({got['products_changed']} products changed)")


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--org", "org_id", required=True)
@click.option("--label", default=None)
@click.option("--json", "as_json", is_flag=True)
def token_create(org_id: str, label: str | None, as_json: bool) -> None:
    made = tenancy.create_api_token(_hub(), org_id, label)
    _emit(as_json, {"id": made.id, "token": made.secret}, f"token {made.id}\n{made.secret}  (shown once)")


@token.command("list")
@click.option("--org", "org_id", default=None, help="only this organization's")
@click.option("--all", "every_kind", is_flag=True, help="also the partners' OAuth access and refresh tokens")
@click.option("--json", "as_json", is_flag=True)
def token_list(org_id: str | None, every_kind: bool, as_json: bool) -> None:
    """API and admin tokens (never their secrets), live and revoked."""
    from stockhub.services import directory

    rows = [representations.token(row) for row in directory.list_tokens(_hub(), org_id, every_kind)]
    _table(rows, ["id", "kind", "organization_id", "partner_id", "label", "created_at", "revoked_at"], as_json, "no tokens")


@token.command("show")
@click.argument("token_id")
@click.option("--json", "as_json", is_flag=True)
def token_show(token_id: str, as_json: bool) -> None:
    from stockhub.services import directory

    _record(representations.token(directory.get_token(_hub(), token_id)), as_json)


@main.group()
def user() -> None:
    """Users: a retailer's (--org: the dashboard, authorizing partner applications) or a partner's
    (--partner: the partner pages of the dashboard and the partner's mail)."""


@user.command("create")
@click.option("--org", "org_id")
@click.option("--partner", "partner_id", help="a partner application's client id (app_...): a partner's user")
@click.option("--role", type=click.Choice(["owner", "staff"]), default="staff", show_default=True)
@click.option("--password-stdin", is_flag=True, help="read the password from standard input instead of prompting")
@click.argument("email")
@click.option("--json", "as_json", is_flag=True)
def user_create(org_id: str | None, partner_id: str | None, role: str, password_stdin: bool, email: str, as_json: bool) -> None:
    from stockhub.services import accounts

    if (org_id is None) == (partner_id is None):
        raise click.UsageError("give --org (a retailer's user) or --partner (a partner's user)")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("password", hide_input=True, confirmation_prompt=True)
    if partner_id:
        made = accounts.create_partner_user(_hub(), partner_id, email, password)
    else:
        made = accounts.create_user(_hub(), org_id, email, password, role)
    _emit(as_json, {"id": made.id, "email": email.strip().lower(), "role": role}, f"user {made.id} ({role})")


@main.group()
def partner() -> None:
    """Partner applications (OAuth clients)."""


@partner.command("create")
@click.argument("name")
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True, help="exact redirect URI; repeat for several")
@click.option("--scope", "scopes", multiple=True, help="a scope it may ask for; repeat; default: all")
@click.option("--public", is_flag=True, help="a public client: no secret, PKCE required")
@click.option("--json", "as_json", is_flag=True)
def partner_create(name: str, redirect_uris: tuple[str, ...], scopes: tuple[str, ...], public: bool, as_json: bool) -> None:
    from stockhub.services import accounts

    made = accounts.create_partner(_hub(), name, list(redirect_uris), [s for x in scopes for s in x.split()] or None, public)
    secret = f"\nclient secret {made.secret}  (shown once)" if made.secret else "\n(public client: no secret)"
    _emit(as_json, {"client_id": made.id, "client_secret": made.secret}, f"client id {made.id}{secret}")


@partner.command("list")
@click.option("--json", "as_json", is_flag=True)
def partner_list(as_json: bool) -> None:
    """Partner applications and how many stores are connected to each."""
    from stockhub.services import directory

    rows = [representations.partner(row) | {"stores": row.stores} for row in directory.list_partners(_hub())]
    _table(rows, ["client_id", "name", "public", "scopes", "stores", "created_at"], as_json, "no partners")


@partner.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
def partner_show(client_id: str, as_json: bool) -> None:
    from stockhub.services import directory

    row, connected = directory.get_partner(_hub(), client_id)
    stores = [
        {"store_id": ids.encode("store", c.store_id), "organization_id": ids.encode("organization", c.organization_id), "partner_store_id": c.partner_store_id}
        for c in connected
    ]
    _record(representations.partner(row) | {"stores": stores}, as_json)


@main.group("admin-token")
def admin_token() -> None:
    """Platform admin tokens (register partners over the admin API)."""


@admin_token.command("create")
@click.option("--label", default=None)
@click.option("--json", "as_json", is_flag=True)
def admin_token_create(label: str | None, as_json: bool) -> None:
    from stockhub.services import accounts

    made = accounts.create_admin_token(_hub(), label)
    _emit(as_json, {"id": made.id, "token": made.secret}, f"admin token {made.id}\n{made.secret}  (shown once)")


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--store", "store_id", required=True)
@click.option("--json", "as_json", is_flag=True)
def import_(file: Path, store_id: str, as_json: bool) -> None:
    """Ingest a stock file from the command line, as an upload of the store."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TransferSpeedColumn

    from stockhub.jobs.worker import Worker

    hub = _hub()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TransferSpeedColumn(), transient=True) as bar:
        copying = bar.add_task(f"storing {file.name}", total=file.stat().st_size)
        recorded = uploads.import_file(hub, store_id, file, progress=lambda n: bar.advance(copying, n))
        bar.add_task("parsing, validating and applying", total=None)
        worker = Worker(hub, name=f"cli-import-{recorded['upload_id']}", deliver_webhooks=False)
        while uploads.get_upload(hub, None, recorded["upload_id"]).row.status in ("received", "processing"):
            if not worker.run_once():
                time.sleep(0.2)  # another worker holds it, or an older upload of the store goes first
    result = representations.upload(*uploads.get_upload(hub, None, recorded["upload_id"]))
    counts = result["counts"]
    _emit(
        as_json,
        result,
        f"upload {result['id']}: {result['status']}; {counts['lines']} lines, {counts['valid']} valid, "
        f"{counts['rejected']} rejected, {counts['changed']} changed" + (f"\n{result['error']}" if result["error"] else ""),
    )


@main.group()
def demo() -> None:
    """The demo made by `stockhub serve --demo` in this data folder."""


@demo.command("env")
@click.option("--listen-port", type=int, default=8099, envvar="STOCKHUB_LISTEN_PORT", show_default=True, help="the port of `stockhub listen` (HOOKS)")
def demo_env(listen_port: int) -> None:
    """Shell lines setting the demo's ids, keys, token and URLs: eval "$(stockhub demo env)"."""
    import shlex

    from stockhub import demo as demo_module

    try:
        env = demo_module.environment(_hub(), listen_port)
    except demo_module.NoDemo as missing:
        raise click.ClickException(str(missing)) from None
    click.echo(f"# the demo in {Settings().data_dir.resolve()}; use: eval \"$(stockhub demo env)\"")
    for name, value in env.items():
        click.echo(f"export {name}={shlex.quote(value)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to listen on")
@click.option("--port", type=int, default=8099, envvar="STOCKHUB_LISTEN_PORT", show_default=True, help="port to listen on (setting STOCKHUB_LISTEN_PORT)")
@click.option("--org", "org_id", default=None, help="subscribe for this organization (default: the demo's)")
@click.option("--event", "event_types", multiple=True, help="an event type to subscribe to; repeat; default: all")
@click.option("--store", "store_ids", multiple=True, help="only this store's events; repeat; default: every store")
@click.option("--subscribe/--no-subscribe", default=True, show_default=True, help="make a subscription for this receiver (removed when it stops)")
@click.option("--keep", is_flag=True, help="keep the subscription when this stops")
@click.option("--secret", "extra_secrets", multiple=True, help="also verify with this whsec_ secret; repeat")
@click.option("--json", "as_json", is_flag=True, help="one JSON line per delivery")
def listen(host: str, port: int, org_id: str | None, event_types: tuple[str, ...], store_ids: tuple[str, ...], subscribe: bool, keep: bool, extra_secrets: tuple[str, ...], as_json: bool) -> None:
    """Receive webhook deliveries on this machine: verify each signature and print it (Ctrl-C stops).

    It subscribes itself for the organization's events (the demo's by default) and verifies with
    the secret of every subscription that points at it, so one made over the API verifies too."""
    import signal

    from stockhub import demo as demo_module
    from stockhub.domain.webhooks import EVENT_TYPES
    from stockhub.listener import Listener, describe
    from stockhub.services import webhooks

    hub = _hub()
    try:
        receiver = Listener(host, port, lambda: [], lambda delivery: click.echo(describe(delivery, as_json)))
    except OSError as error:
        raise click.ClickException(f"cannot listen on {host}:{port}: {error} (choose another with --port)") from None
    receiver.secrets = lambda: [(None, s) for s in extra_secrets] + webhooks.secrets_for_receiver(hub, receiver.base_url)
    subscription = owner = None
    if subscribe:
        demo_org = demo_module.organization(hub)
        org_id = org_id or demo_org
        if org_id is None:
            raise click.ClickException(f"give --org: there is no demo in {hub.settings.data_dir.resolve()} to subscribe for (or --no-subscribe)")
        if org_id == demo_org:  # `serve --demo` delivers to loopback receivers; another server needs STOCKHUB_WEBHOOK_ALLOW_LOOPBACK
            hub.settings.webhook_allow_loopback = True
        from stockhub.services import directory

        directory.get_organization(hub, org_id)  # not found: says in which database
        owner = ids.decode("organization", org_id)
        fields = webhooks.SubscriptionFields(
            url=receiver.url, event_types=list(event_types or EVENT_TYPES), store_ids=list(store_ids) or None, description="stockhub listen"
        )
        row, secret = webhooks.create_subscription(hub, owner, fields)
        subscription = representations.subscription(row, secret)
    # with --json, stdout holds only the deliveries
    click.echo(f"Ready: receiving webhook deliveries at {receiver.url} (Ctrl-C stops)", err=as_json)
    if subscription:
        what = ", ".join(subscription["event_types"]) if event_types else "every event"
        click.echo(f"  subscription {subscription['id']} of {org_id}: {what}; signing secret {subscription['secret']}", err=as_json)
        click.echo("  (kept when this stops)" if keep else "  (removed when this stops; --keep keeps it)", err=as_json)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if subscription and not keep:
            webhooks.delete_subscription(hub, owner, subscription["id"])
            click.echo(f"removed subscription {subscription['id']}", err=as_json)
