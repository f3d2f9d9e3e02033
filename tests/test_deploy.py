"""The deployment recipes hold together without Docker or systemd at hand: the Dockerfile copies
what exists and runs as a non-root user, every `stockhub` command in the compose file and the
systemd units is a real subcommand with valid flags, and every STOCKHUB_* setting they set is a
setting stockhub has."""

from __future__ import annotations

import configparser
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from stockhub.cli import main
from stockhub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
STOCKHUB = str(Path(sys.executable).parent / "stockhub")


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def units() -> dict[str, configparser.ConfigParser]:
    found = {}
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        unit = configparser.ConfigParser(interpolation=None, strict=False)
        unit.optionxform = str  # systemd keys are case-sensitive
        unit.read(path)
        found[path.name] = unit
    return found


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def check_stockhub_command(argv: list[str]) -> str:
    """Parse `stockhub ...` as the CLI would, without running it; returns the subcommand's name."""
    assert Path(argv[0]).name == "stockhub", argv
    name, *rest = argv[1:]
    parent = click.Context(main, info_name="stockhub")
    command = main.get_command(parent, name)
    assert command is not None, f"{shlex.join(argv)}: no such stockhub command"
    try:
        command.make_context(name, rest, parent=parent)
    except click.UsageError as error:
        pytest.fail(f"{shlex.join(argv)}: {error.format_message()}")
    return name


def stockhub_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for service, spec in compose()["services"].items():
        command = spec.get("command")
        if isinstance(command, list) and command and command[0] == "stockhub":
            commands.append((f"compose {service}", command))
    for name, unit in units().items():
        commands.append((name, shlex.split(unit["Service"]["ExecStart"])))
    cmd = [instruction for instruction in dockerfile() if instruction[0] == "CMD"][-1][1]
    commands.append(("Dockerfile CMD", yaml.safe_load(cmd)))  # the JSON (exec) form
    return commands


def settings_names() -> set[str]:
    return {f"STOCKHUB_{name.upper()}" for name in Settings.model_fields}


def test_every_stockhub_command_is_real_and_its_flags_valid():
    commands = stockhub_commands()
    assert {check_stockhub_command(argv) for _, argv in commands} == {"serve", "worker", "ftp"}
    for subcommand in ("serve", "worker", "ftp"):  # and the installed command answers for each
        done = subprocess.run([STOCKHUB, subcommand, "--help"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "Usage: stockhub" in done.stdout, done.stderr


def test_a_wrong_flag_would_be_caught():
    with pytest.raises(pytest.fail.Exception, match="No such option"):
        check_stockhub_command(["stockhub", "serve", "--no-such-flag"])


def test_the_compose_file_runs_a_fleet_on_postgresql_and_object_storage():
    services = compose()["services"]
    images = {name: spec.get("image", "") for name, spec in services.items()}
    assert images["postgres"].startswith("postgres:") and images["minio"].startswith("minio/minio")
    roles = {name: spec["command"][:2] for name, spec in services.items() if spec.get("command", [""])[0] == "stockhub"}
    assert sorted(roles.values()).count(["stockhub", "serve"]) == 2  # two API nodes
    assert ["stockhub", "worker"] in roles.values() and ["stockhub", "ftp"] in roles.values()
    for name in roles:
        env = services[name]["environment"]
        assert env["STOCKHUB_DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["STOCKHUB_DATABASE_URL"]
        assert env["STOCKHUB_STORAGE_URL"].startswith("s3://") and env["STOCKHUB_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert env["AWS_ACCESS_KEY_ID"] == services["minio"]["environment"]["MINIO_ROOT_USER"]
        assert "STOCKHUB_SECRET_KEY" in env  # one secret for every node
        assert {k for k in env if k.startswith("STOCKHUB_")} <= settings_names()
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    api_commands = [spec["command"] for spec in services.values() if spec.get("command", [""])[:2] == ["stockhub", "serve"]]
    assert all("--no-jobs" in c and "--no-ftp" in c for c in api_commands)  # the worker and FTP run on their own


def test_the_systemd_units_and_their_environment_file():
    found = units()
    assert set(found) == {"stockhub-api.service", "stockhub-worker.service", "stockhub-ftp.service"}
    env_file = (DEPLOY / "systemd" / "stockhub.env").read_text()
    variables = {line.split("=", 1)[0].lstrip("#") for line in env_file.splitlines() if "=" in line and not line.startswith("# ")}
    assert {"STOCKHUB_SECRET_KEY", "STOCKHUB_DATABASE_URL", "STOCKHUB_STORAGE_URL", "AWS_ACCESS_KEY_ID"} <= variables
    assert {v for v in variables if v.startswith("STOCKHUB_")} <= settings_names()
    for name, unit in found.items():
        service = unit["Service"]
        assert service["User"] == "stockhub" and service["EnvironmentFile"] == "/etc/stockhub/stockhub.env", name
        assert service["ExecStart"].startswith("/opt/stockhub/bin/stockhub "), name
        assert unit["Install"]["WantedBy"] == "multi-user.target"
        settings_set = [v.split("=", 1)[0] for v in service.get("Environment", "").split()]
        assert set(settings_set) <= settings_names(), name


def test_the_dockerfile_builds_from_what_exists_and_runs_as_a_user():
    instructions = dockerfile()
    assert instructions[0] == ("FROM", "python:3.12-slim")
    for kind, arguments in instructions:
        if kind == "COPY":
            *sources, _ = arguments.split()
            assert all((ROOT / source).exists() for source in sources), arguments
    runs = " ".join(arguments for kind, arguments in instructions if kind == "RUN")
    assert "pip install ." in runs
    assert [arguments for kind, arguments in instructions if kind == "USER"] == ["stockhub"]
    assert "useradd --system --uid 10001" in runs
    healthcheck = next(arguments for kind, arguments in instructions if kind == "HEALTHCHECK")
    assert "http://127.0.0.1:8000/healthz" in healthcheck
    exposed = next(arguments for kind, arguments in instructions if kind == "EXPOSE").split()
    assert exposed == [str(Settings.model_fields["port"].default), str(Settings.model_fields["ftp_port"].default)]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"src", "pyproject.toml", "README.md"} & set(ignored)


def test_the_healthcheck_path_is_a_route(tmp_path):
    from stockhub.api.app import create_app
    from stockhub.services.context import Hub

    hub = Hub.from_settings(Settings(data_dir=tmp_path, secret_key="deploy-test"))
    from fastapi.testclient import TestClient

    with TestClient(create_app(hub)) as client:  # the Dockerfile's HEALTHCHECK asks the real app
        assert client.get("/healthz").status_code == 200
    hub.engine.dispose()
