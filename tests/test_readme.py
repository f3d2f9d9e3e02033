"""The README works when pasted: every ```sh block (or ```bash, ```shell) runs, in order, as a
person pastes them.

How the blocks run:
- In a fresh folder with `.venv` linked to this test's virtualenv, so `. .venv/bin/activate`
  and `.venv/bin/stockhub` work as in a checkout; no `STOCKHUB_*` variable is inherited.
- One shell's state goes from block to block (its variables, functions and folder), as in a
  terminal; each block runs under `set -eo pipefail` with `curl` failing on an HTTP error
  (`--fail-with-body` in a `.curlrc` of its own, `CURL_HOME`), so a command that goes wrong fails
  its block.
- Marks, an HTML comment on the line just before a block (invisible on the rendered page):
  `<!-- readme-test: skip (why) -->` does not run it (installs, PostgreSQL, the suite itself);
  `<!-- readme-test: background until "text" (why) -->` starts it and waits for it to print
  `text` (`stockhub serve --demo`, `stockhub listen`), and stops it (Ctrl-C) at the end.
  Every mark must give its reason, and a block running something that installs or does not
  return (`pip install`, `stockhub serve`, ...) must be marked.
- Ports: the demo's defaults (8000, 2121, 8099 for the listener) when they are free; else free
  ports given to the background blocks as STOCKHUB_PORT, STOCKHUB_FTP_PORT and
  STOCKHUB_LISTEN_PORT — the settings serve and listen read. The README's commands take the
  addresses from `stockhub demo env`, so they are the same commands either way.

A failing block is reported with its line in README.md, the commands it ran (bash's trace, each
line prefixed with its README line) and their output, and the servers' last output.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
SHELL_FENCES = ("```sh", "```bash", "```shell")  # the blocks that run; ```console and the rest are shown only
MARK = re.compile(r'^<!--\s*readme-test:\s*(?P<what>skip|background until "(?P<ready>[^"]+)")\s*\((?P<why>[^)]*)\)\s*-->$')
# commands that install something or do not return: a block holding one must be marked
NEVER_RETURNS = re.compile(r"\bpip install\b|\bstockhub (serve|worker|ftp|listen)\b|scripts/test\b|\bapt(-get)? install\b|\bdocker\b")
DEFAULT_PORTS = {"STOCKHUB_PORT": 8000, "STOCKHUB_FTP_PORT": 2121, "STOCKHUB_LISTEN_PORT": 8099}
BLOCK_SECONDS = 240  # a guard against a hang, not a speed target: a block of CLI calls takes a minute on a loaded 2-core machine
READY_SECONDS = 120  # the demo's first start makes its uploads and orders: slow on a loaded machine

# the shell's own variables, not the README's (some are read-only): not carried between blocks
SHELL_OWN = (
    "BASH BASHOPTS BASHPID BASH_ALIASES BASH_ARGC BASH_ARGV BASH_ARGV0 BASH_CMDS BASH_COMMAND BASH_LINENO BASH_LOADABLES_PATH "
    "BASH_SOURCE BASH_SUBSHELL BASH_VERSINFO BASH_VERSION BASH_EXECUTION_STRING COLUMNS COMP_WORDBREAKS DIRSTACK EPOCHREALTIME "
    "EPOCHSECONDS EUID FUNCNAME GROUPS HISTCMD HISTFILE HISTFILESIZE HISTSIZE HOSTNAME HOSTTYPE IFS LINENO LINES MACHTYPE "
    "MAILCHECK OLDPWD OPTERR OPTIND OSTYPE PIPESTATUS PPID PS1 PS2 PS4 PWD RANDOM SECONDS SHELLOPTS SHLVL SRANDOM UID _"
).split()


@dataclass
class Block:
    number: int
    line: int  # of the first command, in README.md
    code: str
    mark: str | None  # None, "skip" or "background"
    ready: str | None
    why: str | None

    def where(self) -> str:
        return f"README.md block {self.number} (line {self.line})"


def blocks(text: str) -> list[Block]:
    """The ```sh blocks and their marks. A `<!-- readme-test ... -->` line that does not parse is an error."""
    lines = text.splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() in SHELL_FENCES:
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
            previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            mark = ready = why = None
            if previous.startswith("<!--") and "readme-test" in previous:
                parsed = MARK.match(previous)
                assert parsed, (
                    f"README.md line {i}: {previous!r} is not a readme-test mark; write "
                    '<!-- readme-test: skip (why) --> or <!-- readme-test: background until "text" (why) -->'
                )
                mark, ready, why = parsed["what"].split()[0], parsed["ready"], parsed["why"].strip()
            found.append(Block(len(found) + 1, start + 1, "\n".join(lines[start:end]) + "\n", mark, ready, why))
            i = end
        i += 1
    return found


def test_every_skipped_or_background_block_says_why_and_every_endless_one_is_marked():
    problems = []
    for block in blocks(README.read_text()):
        if block.mark and not block.why:
            problems.append(f"{block.where()}: its mark gives no reason in parentheses")
        commands = "\n".join(re.sub(r"(^|\s)#.*", "", line) for line in block.code.splitlines())  # not the comments
        if block.mark is None and (hit := NEVER_RETURNS.search(commands)):
            problems.append(
                f"{block.where()} runs `{hit.group(0)}`, which installs something or does not return: put "
                f'<!-- readme-test: skip (why) --> or <!-- readme-test: background until "text" (why) --> on the line before it'
            )
    lines = README.read_text().splitlines()
    for n, line in enumerate(lines):
        if "readme-test" in line and line.strip().startswith("<!--"):
            following = next((later.strip() for later in lines[n + 1 :] if later.strip()), "")
            if following not in SHELL_FENCES:
                problems.append(f"README.md line {n + 1}: a readme-test mark must be on the line before a ```sh block")
    assert not problems, "\n".join(problems)


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


_SAVE_STATE = """
__state="$1"
__own=" __SHELL_OWN__ "
{
  for __name in $(compgen -v); do
    case "$__own" in *" $__name "*) continue;; esac
    case "$__name" in __*) continue;; esac
    declare -p "$__name" 2>/dev/null
  done
  declare -f
  printf 'cd %q\\n' "$PWD"
} > "$__state"
"""


class Shell:
    """Runs blocks one after another in a folder, carrying the shell's state between them."""

    def __init__(self, folder: Path, env: dict):
        self.folder, self.env = folder, env
        self.state = folder.parent / "state.sh"
        self.state.write_text("")
        self.save = folder.parent / "save-state.sh"
        self.save.write_text(_SAVE_STATE.replace("__SHELL_OWN__", " ".join(SHELL_OWN)))
        self.background: list[tuple[Block, subprocess.Popen, Path]] = []

    def script(self, block: Block) -> Path:
        # the block in a file named README.md, at its own lines: bash's trace names README.md:line
        folder = self.folder.parent / f"block-{block.number}"
        folder.mkdir()
        path = folder / "README.md"
        path.write_text("\n" * (block.line - 1) + block.code)
        prelude = self.folder.parent / f"run-{block.number}.sh"
        prelude.write_text(
            f"source {self.state}\n"
            "set -eo pipefail\n"
            "PS4='+ ${BASH_SOURCE[0]##*/}:${LINENO}: '\n"
            "set -x\n"
            f"source {path}\n"
            "{ set +x; } 2>/dev/null\n"
            f"source {self.save} {self.state}\n"
        )
        return prelude

    def run(self, block: Block) -> None:
        log = self.folder.parent / f"block-{block.number}.log"
        with open(log, "w") as out:
            try:
                done = subprocess.run(["bash", str(self.script(block))], cwd=self.folder, env=self.env, stdout=out, stderr=subprocess.STDOUT, timeout=BLOCK_SECONDS)
                code = done.returncode
            except subprocess.TimeoutExpired:
                code = f"a timeout ({BLOCK_SECONDS} s)"
        if code != 0:
            pytest.fail(self.report(block, f"failed with exit status {code}", log), pytrace=False)

    def start(self, block: Block) -> None:
        log = self.folder.parent / f"block-{block.number}.log"
        process = subprocess.Popen(
            ["bash", str(self.script(block))], cwd=self.folder, env=self.env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        self.background.append((block, process, log))
        deadline = time.monotonic() + READY_SECONDS
        while block.ready not in (log.read_text(errors="replace") if log.exists() else ""):
            if process.poll() is not None:
                pytest.fail(self.report(block, f"ended (exit status {process.returncode}) before printing {block.ready!r}", log), pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(self.report(block, f"did not print {block.ready!r} within {READY_SECONDS} s", log), pytrace=False)
            time.sleep(0.2)

    def report(self, block: Block, what: str, log: Path) -> str:
        parts = [
            f"{block.where()} {what}.",
            "--- the block ---",
            block.code.rstrip(),
            "--- what it ran (+ README.md:line: command) and printed, last 80 lines ---",
            _tail(log, 80),
        ]
        for other, _process, other_log in self.background:
            if other is not block:
                parts += [f"--- {other.where()}, running in the background: last 30 lines ---", _tail(other_log, 30)]
        return "\n".join(parts)

    def stop(self) -> None:
        for _block, process, _log in reversed(self.background):  # Ctrl-C, as a person stops them
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(10)


@pytest.mark.slow
def test_the_readme_works_when_pasted(tmp_path):
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    assert not missing, f"the README's commands need {', '.join(missing)} (scripts/test installs them)"
    folder = tmp_path / "checkout"
    folder.mkdir()
    (folder / ".venv").symlink_to(sys.prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STOCKHUB_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    curl_home = tmp_path / "curl"  # curl reads $CURL_HOME/.curlrc: an HTTP error fails the command, and says so
    curl_home.mkdir()
    (curl_home / ".curlrc").write_text("fail-with-body\nshow-error\n")
    env["CURL_HOME"] = str(curl_home)
    for name, port in DEFAULT_PORTS.items():
        if not _free(port):
            env[name] = str(_any_port())  # documented above: the README reads the addresses from `stockhub demo env`
    shell = Shell(folder, env)
    run = [b for b in blocks(README.read_text()) if b.mark != "skip"]
    assert len(run) >= 10 and any(b.mark == "background" for b in run)
    try:
        for block in run:
            if block.mark == "background":
                shell.start(block)
            else:
                shell.run(block)
    finally:
        shell.stop()
    listened = next((log for block, _p, log in shell.background if "stockhub listen" in block.code), None)
    if listened is not None:  # what the README says the listener prints
        printed = listened.read_text()
        assert "verified  upload.processed" in printed and "verified  order.created" in printed, printed[-3000:]
        assert "refused" not in printed, printed[-3000:]
