"""The `stockhub` command: serve, administer tenants, import a file."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

import click

from stockhub.errors import Problem, ServiceError
from stockhub.services import tenancy, uploads
from stockhub.services.context import Hub
from stockhub.settings import Settings


def _hub(migrate: bool = True) -> Hub:
    hub = Hub.from_settings(Settings())
    if migrate:
        from stockhub.db.migrate import upgrade

        upgrade(hub.engine, hub.storage.local_folder())
    return hub


def _emit(as_json: bool, data: dict, text: str) -> None:
    click.echo(json.dumps(data) if as_json else text)


class _Group(click.Group):
    """Turns a service's error into a one-line message and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ServiceError, Problem) as problem:
            details = "".join(f"\n  {e.field}: {e.message}" for e in problem.errors)
            click.echo(f"error: {problem.detail or problem.title}{details}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="stockhub")
def main() -> None:
    """stockhub: stock-and-order hub for physical retailers."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


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
    them, and runs the background workers and the FTP gateway itself, once."""
    from stockhub.api.server import http_server
    from stockhub.jobs.worker import Worker

    hub = _hub()
    host = host or hub.settings.host
    port = port or hub.settings.port
    count = api_workers or hub.settings.workers or os.cpu_count() or 1
    listening = _http_socket(host, port)  # both ports are taken before anything changes: a busy one fails the start
    gateway = _ftp_gateway(hub, host, ftp_port, demo) if (hub.settings.ftp_enabled if ftp is None else ftp) else None
    if demo:
        hub.settings.webhook_allow_loopback = True  # so a receiver on this machine can subscribe
    processes = None
    if count > 1:  # started first: they import while the demo is made, and accept once told to
        from stockhub.api.processes import ApiProcesses, listen_for_wake_ups

        listening.listen(2048)
        processes = ApiProcesses(listening, count, listen_for_wake_ups(hub), host=host, port=port, allow_loopback=hub.settings.webhook_allow_loopback)
        processes.start()
    worker = Worker(hub)
    try:
        if demo:
            from stockhub.demo import create_demo

            click.echo(create_demo(hub, f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}", gateway and gateway.port))
        if jobs and not no_jobs:
            worker.start()
        if gateway:
            gateway.start()
        if processes is not None:
            code = processes.run()
            if code:
                sys.exit(code)
            return
        server = http_server(hub, host, port, log_level="info", proxy_headers=True)
        server.run(sockets=[listening])
        if not server.started:  # uvicorn has logged why
            sys.exit(3)
    finally:
        if processes is not None:
            processes.stop()
        if gateway:
            gateway.stop()
        worker.stop()


def _http_socket(host: str, port: int) -> socket.socket:
    sock = None
    try:
        family, *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        return sock
    except OSError as error:
        if sock is not None:
            sock.close()
        raise click.ClickException(f"the HTTP server cannot start on {host}:{port}: {error}") from None


def _ftp_gateway(hub: Hub, host: str | None, port: int | None, demo: bool):
    from OpenSSL import SSL

    from stockhub.gateways.ftp import FtpGateway

    if demo and hub.settings.ftp_tls_cert is None:
        from stockhub.gateways.ftp_tls import ensure_self_signed

        hub.settings.ftp_tls_cert, hub.settings.ftp_tls_key = ensure_self_signed(hub.settings.data_dir / "tls")
    try:
        return FtpGateway(hub, host=hub.settings.ftp_host or host, port=port)
    except (OSError, ValueError, SSL.Error) as error:  # port taken, bad settings, unreadable certificate
        raise click.ClickException(f"the FTP gateway cannot start: {error}") from None


@main.command()
@click.option("--host", default=None, help="interface to listen on (default STOCKHUB_FTP_HOST, else STOCKHUB_HOST)")
@click.option("--port", default=None, type=int, help="FTP port (default 2121, setting STOCKHUB_FTP_PORT)")
def ftp(host: str | None, port: int | None) -> None:
    """Run only the FTP/FTPS gateway (uploads go to the workers through the database)."""
    _ftp_gateway(_hub(), host, port, demo=False).serve_forever()


@main.command()
def worker() -> None:
    """Run only the background workers (scaled-out deployments)."""
    from stockhub.jobs.worker import Worker

    Worker(_hub()).run_forever()


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
    _emit(as_json, updated, f"store {store_id} updated")


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
        level = safety_stock.set_product(_hub(), None, store_id, identifier, body.safety_stock)
        _emit(as_json, level, f"{identifier} at {store_id}: safety stock {level['safety_stock']}, available {level['available']}")
    else:
        got = safety_stock.set_store_default(_hub(), None, store_id, body.safety_stock)
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
        while uploads.get_upload(hub, None, recorded["upload_id"])["status"] in ("received", "processing"):
            if not worker.run_once():
                time.sleep(0.2)  # another worker holds it, or an older upload of the store goes first
    result = uploads.get_upload(hub, None, recorded["upload_id"])
    counts = result["counts"]
    _emit(
        as_json,
        result,
        f"upload {result['id']}: {result['status']}; {counts['lines']} lines, {counts['valid']} valid, "
        f"{counts['rejected']} rejected, {counts['changed']} changed" + (f"\n{result['error']}" if result["error"] else ""),
    )
