"""`stockhub doctor` says what is wrong in plain words, and exits 1 when something must be fixed."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from stockhub.doctor import run_checks
from stockhub.settings import Settings


def test_a_sound_install_passes(run):
    run("migrate")
    done = run("doctor")
    lines = done.stdout.splitlines()
    for name in ("settings", "database", "migrations", "storage", "clock"):
        assert any(line.startswith("ok") and f" {name} " in line for line in lines), done.stdout
    assert any(line.startswith("warn") and "ftp certificate" in line and "unencrypted" in line for line in lines)
    assert "nothing is wrong" in done.stdout


def test_it_fails_with_what_is_wrong(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")} | {
        "STOCKHUB_DATA_DIR": str(tmp_path / "data"), "STOCKHUB_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",  # never migrated
    }
    broken = subprocess.run([str(Path(sys.executable).parent / "stockhub"), "doctor"], env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1
    assert "fail  migrations" in broken.stdout and "run `stockhub migrate`" in broken.stdout
    assert "1 problem to fix" in broken.stderr


def _failures(checks) -> dict[str, str]:
    return {c.name: c.message for c in checks if c.status == "fail"}


def test_settings_that_do_not_parse_are_named(tmp_path):
    checks = run_checks(lambda: Settings(data_dir=tmp_path, rate_limit_per_token="lots"))
    assert _failures(checks) == {"settings": _failures(checks)["settings"]}
    assert "STOCKHUB_RATE_LIMIT_PER_TOKEN" in _failures(checks)["settings"] and "600/minute" in _failures(checks)["settings"]


def test_an_unreachable_database_and_a_fleet_without_a_secret(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    checks = run_checks(lambda: Settings(data_dir=tmp_path, database_url=f"postgresql://postgres@127.0.0.1:{port}/stockhub"))
    failed = _failures(checks)
    assert "STOCKHUB_SECRET_KEY" in failed["secret"]
    assert "database" not in failed  # not tried: the settings must be fixed first
    checks = run_checks(lambda: Settings(data_dir=tmp_path, database_url=f"postgresql://postgres@127.0.0.1:{port}/stockhub", secret_key="x" * 40))
    assert f"cannot reach the database at postgresql+psycopg://postgres@127.0.0.1:{port}/stockhub" in _failures(checks)["database"]


def test_storage_that_cannot_be_written(tmp_path, sqlite_template):
    (tmp_path / "a-file").write_text("not a folder")
    settings = _sqlite_settings(tmp_path, sqlite_template, storage_url=f"file://{tmp_path / 'a-file'}")
    assert "cannot write a file to file://" in _failures(run_checks(lambda: settings))["storage"]


def test_the_ftp_certificate_expired_for_another_host_or_without_its_key(tmp_path, sqlite_template):
    now = datetime.datetime.now(datetime.UTC)
    expired = _certificate(tmp_path / "expired", "ftp.acme.test", now - datetime.timedelta(days=400), now - datetime.timedelta(days=1))
    settings = _sqlite_settings(tmp_path, sqlite_template, ftp_tls_cert=expired[0], ftp_tls_key=expired[1], public_url="https://ftp.acme.test")
    assert "expired on" in _failures(run_checks(lambda: settings))["ftp certificate"]

    elsewhere = _certificate(tmp_path / "elsewhere", "other.example", now - datetime.timedelta(days=1), now + datetime.timedelta(days=90))
    settings = _sqlite_settings(tmp_path, sqlite_template, ftp_tls_cert=elsewhere[0], ftp_tls_key=elsewhere[1], public_url="https://ftp.acme.test")
    assert "names other.example, not ftp.acme.test" in _failures(run_checks(lambda: settings))["ftp certificate"]

    settings = _sqlite_settings(tmp_path, sqlite_template, ftp_tls_cert=elsewhere[0], ftp_tls_key=expired[1], public_url="https://other.example")
    assert "does the key match" in _failures(run_checks(lambda: settings))["ftp certificate"]

    settings = _sqlite_settings(tmp_path, sqlite_template, ftp_tls_cert=tmp_path / "missing.pem", public_url="https://other.example")
    assert "does not exist" in _failures(run_checks(lambda: settings))["ftp certificate"]

    good = _certificate(tmp_path / "good", "ftp.acme.test", now - datetime.timedelta(days=1), now + datetime.timedelta(days=90))
    settings = _sqlite_settings(tmp_path, sqlite_template, ftp_tls_cert=good[0], ftp_tls_key=good[1], public_url="https://ftp.acme.test")
    checks = run_checks(lambda: settings)
    assert not _failures(checks)
    assert any(c.name == "ftp certificate" and c.status == "ok" and "names ftp.acme.test" in c.message for c in checks)


def _sqlite_settings(tmp_path, template, **overrides) -> Settings:
    import shutil

    database = tmp_path / "doctor.sqlite3"
    if not database.exists():
        shutil.copy(template, database)
    return Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{database}", secret_key="y" * 40, **overrides)


def _certificate(folder, host: str, begins, ends):
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(begins).not_valid_after(ends)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"
