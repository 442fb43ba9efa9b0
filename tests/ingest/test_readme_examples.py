"""The README's examples work as written: its curl commands, taken from the fenced ``sh`` blocks of
the "HTTP API" section, run in order against a real ``rpm-ingest serve`` and every answer is 2xx;
its command table names every command of the CLI.

The commands run with curl when the machine has it (Debian's ``curl``), else each is translated
to httpx with curl's own defaults (``-d`` posts a form, ``--json`` posts JSON). Either way the
shell expands the line first (``$TOKEN``, ``$(date -u …)``, quoting), so what runs is what a
reader's shell would run. ``…`` in a command is the id an earlier answer gave.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import httpx
import pytest

from ingest.cli import cli
from tests.support.paths import ROOT as REPO_ROOT
from tests.support.serve_process import stop
from tests.support.service import free_port

README = REPO_ROOT / "README.md"
README_HOST = "localhost:8000"
PLACEHOLDER = "…"


def section(title: str) -> str:
    """The text of the README's ``## title`` section."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def curl_commands(text: str) -> list[str]:
    """Every curl command of the section's sh blocks, in order (continuation lines joined)."""
    commands = []
    for block in sh_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip().startswith("curl "):
                commands.append(line.strip())
    return commands


def expand(command: str, env: dict[str, str]) -> list[str]:
    """The arguments bash passes to curl for ``command`` (variables, substitutions, quotes)."""
    assert command.startswith("curl ")
    script = "set -- " + command.removeprefix("curl ") + "\nprintf '%s\\0' \"$@\"\n"
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\0")[:-1]


@dataclass
class CurlRequest:
    """What curl sends for a set of arguments (the options the README uses)."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    stream: bool = False


def as_request(args: list[str]) -> CurlRequest:
    method: str | None = None
    headers: dict[str, str] = {}
    body: bytes | None = None
    url: str | None = None
    stream = False
    defaults: dict[str, str] = {}
    it = iter(args)
    for arg in it:
        if arg in ("-X", "--request"):
            method = next(it)
        elif arg in ("-H", "--header"):
            name, _, value = next(it).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw", "--data-binary"):
            body = next(it).encode()
            defaults = {"Content-Type": "application/x-www-form-urlencoded"}
        elif arg == "--json":
            body = next(it).encode()
            defaults = {"Content-Type": "application/json", "Accept": "application/json"}
        elif arg in ("-N", "--no-buffer"):
            stream = True
        elif arg.startswith("-"):
            raise AssertionError(f"an option this test does not translate: {arg}")
        else:
            assert url is None, f"two URLs: {url}, {arg}"
            url = arg
    assert url is not None, f"no URL in {args}"
    lower = {name.lower() for name in headers}
    headers |= {name: value for name, value in defaults.items() if name.lower() not in lower}
    if "://" not in url:
        url = "http://" + url
    return CurlRequest(url, method or ("POST" if body is not None else "GET"), headers, body, stream)


@dataclass
class Answer:
    status: int
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


def run_with_curl(curl: str, args: list[str], tmp_path: Path) -> Answer:
    out = tmp_path / f"answer-{uuid.uuid4().hex[:8]}"
    stream = "-N" in args or "--no-buffer" in args
    done = subprocess.run(
        [curl, "-sS", "-o", str(out), "-w", "%{http_code}", "--max-time", "2" if stream else "30", *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    # A stream never ends by itself: curl stops it at --max-time (exit 28) after the answer began.
    assert done.returncode == 0 or (stream and done.returncode == 28), done.stderr
    body = out.read_text(encoding="utf-8") if out.exists() else ""
    return Answer(int(done.stdout.strip() or 0), body)


def run_with_httpx(args: list[str]) -> Answer:
    request = as_request(args)
    if request.stream:
        timeout = httpx.Timeout(10, read=2)
        with httpx.stream(request.method, request.url, headers=request.headers, timeout=timeout) as r:
            return Answer(r.status_code, "")
    r = httpx.request(request.method, request.url, headers=request.headers, content=request.body, timeout=30)
    return Answer(r.status_code, r.text)


def fill_in(command: str, ids: dict[str, str]) -> str:
    """Put ids from earlier answers where the README writes ``…``."""

    def from_key(m: re.Match[str]) -> str:  # "patient_id": "…"
        return f'"{m[1]}_id": "{ids[m[1] + "s"]}"'

    def from_path(m: re.Match[str]) -> str:  # /v1/patients/…
        return f"/v1/{m[1]}/{ids[m[1]]}"

    command = re.sub(rf'"(\w+)_id": "{PLACEHOLDER}"', from_key, command)
    command = re.sub(rf"/v1/([\w-]+)/{PLACEHOLDER}", from_path, command)
    assert PLACEHOLDER not in command, f"a placeholder this test cannot fill: {command}"
    return command


def remember(method: str, url: str, answer: Any, ids: dict[str, str]) -> None:
    """Keep the id a creation or a listing answered with, by collection (``patients``, ``alerts``)."""
    match = re.fullmatch(r"/v1/([\w-]+)", urlsplit(url).path)
    if match is None:
        return
    collection = match[1]
    if method == "POST" and isinstance(answer, dict) and "id" in answer:
        ids[collection] = str(answer["id"])
    elif method == "GET":
        items = answer.get(collection) if isinstance(answer, dict) else answer
        if isinstance(items, list) and items and isinstance(items[0], dict) and "id" in items[0]:
            ids[collection] = str(items[0]["id"])


@pytest.fixture
def served(
    db_url: str, mqtt_url: str, topic_prefix: str, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    """A real ``rpm-ingest serve`` (every component) on this test's database and broker topics."""
    port = free_port()
    env = {
        **os.environ,
        "RPM_DATABASE_URL": db_url,
        "RPM_MQTT_URL": mqtt_url,
        "RPM_MQTT_TOPIC_PREFIX": topic_prefix,
        "RPM_MQTT_CLIENT_ID": f"readme-{uuid.uuid4().hex[:8]}",
        "RPM_HTTP_HOST": "127.0.0.1",
        "RPM_HTTP_PORT": str(port),
        "RPM_DATA_DIR": str(tmp_path),
    }
    command = [sys.executable, "-m", "ingest"]
    proc = subprocess.Popen(
        [*command, "serve"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("rpm-ingest serve did not become ready:\n" + "".join(output)[-4000:])
        created = subprocess.run(
            [*command, "token", "create", "--role", "admin", "--name", "readme"],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip().splitlines()[-1]
        yield f"127.0.0.1:{port}", {"PATH": os.environ.get("PATH", ""), "TOKEN": token}
    finally:
        stop(proc)
        reader.join(5)


def test_the_readme_curl_examples_work_in_order(served: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    host, env = served
    commands = curl_commands(section("HTTP API"))
    assert len(commands) >= 10, commands
    curl = shutil.which("curl")
    ids: dict[str, str] = {}
    answers: list[tuple[str, Answer]] = []
    for command in commands:
        args = expand(fill_in(command, ids).replace(README_HOST, host), env)
        request = as_request(args)
        answer = run_with_curl(curl, args, tmp_path) if curl else run_with_httpx(args)
        assert 200 <= answer.status < 300, (command, answer.status, answer.body)
        if not request.stream:
            remember(request.method, request.url, answer.json(), ids)
        answers.append((f"{request.method} {urlsplit(request.url).path}", answer))

    # The examples are consistent with one another, not merely accepted.
    posted = [a.json() for what, a in answers if what == "POST /v1/readings"]
    assert posted and all(p["accepted"] == 1 and not p["rejected"] for p in posted), posted
    [readings] = [a.json() for what, a in answers if re.fullmatch(r"GET /v1/patients/[^/]+/readings", what)]
    assert [b["metric"] for b in readings["buckets"]] == ["heart_rate"], readings  # its own reading
    [alerts] = [a.json() for what, a in answers if what == "GET /v1/alerts"]
    assert alerts["alerts"] and alerts["alerts"][0]["metric"] == "blood_pressure", alerts
    [acknowledged] = [a.json() for what, a in answers if what.endswith("/acknowledge")]
    assert acknowledged["status"] == "acknowledged"


def test_every_readme_body_is_sent_as_json() -> None:
    """What a reader's curl sends (translated with curl's defaults) carries a JSON content type."""
    env = {"PATH": os.environ.get("PATH", ""), "TOKEN": "t"}
    ids = {"patients": "p", "alerts": "a"}
    requests = [as_request(expand(fill_in(c, ids), env)) for c in curl_commands(section("HTTP API"))]
    with_body = [r for r in requests if r.body is not None]
    assert len(with_body) >= 7
    for request in with_body:
        assert request.headers["Content-Type"] == "application/json", request
        json.loads(request.body or b"")  # the shell's quoting leaves valid JSON


def test_curl_d_without_a_type_is_a_form_as_curl_sends_it() -> None:
    request = as_request(["-H", "Authorization: Bearer x", "-d", "{}", "localhost:8000/v1/patients"])
    assert request.method == "POST" and request.url == "http://localhost:8000/v1/patients"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    request = as_request(["-X", "PUT", "-H", "content-type: application/json", "-d", "{}", "h/x"])
    assert request.method == "PUT" and request.headers == {"content-type": "application/json"}


def leaf_commands(group: click.Group, prefix: str = "") -> list[str]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += leaf_commands(command, f"{prefix}{name} ")
        else:
            found.append(prefix + name)
    return found


def test_the_readme_lists_every_command() -> None:
    text = section("Command line")
    commands = leaf_commands(cli)
    assert {"serve", "devices provision", "fhir keygen", "token create"} <= set(commands)
    missing = [c for c in commands if not re.search(rf"`rpm-ingest {re.escape(c)}[` ]", text)]
    assert not missing, f"commands the README's command section does not list: {missing}"
