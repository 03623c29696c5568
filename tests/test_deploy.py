"""The files operators deploy hold against the code: deploy/docker (Dockerfile, compose, nginx)
and deploy/k8s (Kubernetes manifests).

No Docker engine or cluster runs here, so each file is checked for what would break a deploy:

- Kubernetes manifests against the Kubernetes JSON schemas (`kubernetes-validate`, strict: no
  unknown fields), for the oldest and the newest Kubernetes version checked (K8S_VERSIONS).
  The ServiceMonitor is a CRD those schemas lack: it is checked against SERVICE_MONITOR, a
  schema written here for the fields we use (the Prometheus Operator's names and formats, no
  others allowed), whose `metadata` and `selector` are Kubernetes' own ObjectMeta and
  LabelSelector schemas.
- docker-compose.yml against the Compose Specification's JSON schema (tests/data).
- nginx.conf parsed here: the WebSocket proxy settings, round-robin, upstreams that are the
  compose gateways on their real port.
- The Dockerfile: a non-root user, commands the installed project provides, files the image
  has, a build context (.dockerignore) holding what `pip install .` reads.
- Everywhere: every variable set is a real setting (shared/settings.py, or one
  deploy/gunicorn.conf.py reads) with a valid value; every command is one the `oddstream`
  CLI's own parser or gunicorn's accepts; probe and scrape paths are gateway routes on the
  gateway's port; the shutdown budget covers the drain.
- And the commands run: the compose stack's gateway (gunicorn), worker and simulator with the
  compose environment, and the Kubernetes gateway and worker with theirs, against the test
  Redis, serving data, passing their health checks and draining on SIGTERM within budget.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import ipaddress
import json
import os
import re
import runpy
import secrets
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jsonschema
import kubernetes_validate
import pytest
import yaml
from gunicorn.config import Config as GunicornConfig
from pydantic import AliasChoices
from referencing import Registry, Resource

from oddstream.cli import _parser as oddstream_parser
from oddstream.embedded import free_port
from oddstream.gateway.app import create_app
from oddstream.gateway.auth import check_production_secrets
from oddstream.gateway.limits import parse_networks
from oddstream.shared.settings import Settings, SettingsError
from tests.harness import ADMIN_TOKEN as ADMIN
from tests.harness import Client, running_gateway, wait_until

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "deploy" / "docker"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "docker-compose.yml"
NGINX = DOCKER / "nginx.conf"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec.json"

#: The oldest Kubernetes the manifests are for (autoscaling/v2 and policy/v1 are GA long
#: before it), and the newest whose schemas kubernetes-validate ships.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
#: In deploy/k8s but applied on their own (kustomization.yaml says why).
APPLIED_ALONE = {"secret.example.yaml", "servicemonitor.yaml"}
#: Variables set in the image that are the system's or Python's, not ours.
RUNTIME_VARIABLES = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PIP_NO_CACHE_DIR",
                     "PIP_DISABLE_PIP_VERSION_CHECK", "XDG_RUNTIME_DIR"}  # fmt: skip
GATEWAY_APP = "oddstream.gateway.app:gunicorn_app"
#: The JWT_SECRET the tests deploy with, as an operator would (`openssl rand -hex 32`).
STRONG_SECRET = secrets.token_hex(32)


# --- what the code says ---------------------------------------------------------------------


def setting_variables() -> dict[str, str]:
    """Environment variable -> Settings field, as pydantic-settings reads them."""
    names: dict[str, str] = {}
    prefix = str(Settings.model_config.get("env_prefix", ""))
    for name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str) and choice != name:
                    names[choice.upper()] = name
        elif isinstance(alias, str):
            names[alias.upper()] = name
        else:
            names[f"{prefix}{name}".upper()] = name
    return names


def gunicorn_conf_variables() -> set[str]:
    """Variables deploy/gunicorn.conf.py reads (`os.environ.get("NAME", ...)`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(GUNICORN_CONF.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and ast.unparse(node.func.value) == "os.environ"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add(str(node.args[0].value))
    return found


KNOWN_VARIABLES = set(setting_variables()) | gunicorn_conf_variables()


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ is exactly `env` inside (and as it was after)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def settings_from(env: Mapping[str, str], where: str) -> Settings:
    """The Settings a process started with `env` gets; the test fails on an invalid value."""
    unknown = sorted(set(env) - KNOWN_VARIABLES - RUNTIME_VARIABLES)
    assert not unknown, f"{where}: not a setting: {unknown}"
    with environment(env):
        try:
            return Settings(_env_file=None)
        except ValueError as exc:
            raise AssertionError(f"{where}: invalid setting: {exc}") from None


def gunicorn_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """deploy/gunicorn.conf.py evaluated with `env`: bind, workers, graceful_timeout, ..."""
    with environment(env):
        return runpy.run_path(str(GUNICORN_CONF))


def gateway_routes() -> set[str]:
    app = create_app(Settings(_env_file=None))
    return {resource.canonical for resource in app.router.resources()}


def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def installed_commands() -> dict[str, str]:
    """Commands `pip install .` puts on PATH that the deploy files use: the project's scripts,
    and gunicorn's (a dependency)."""
    project = pyproject()["project"]
    commands = dict(project["scripts"])
    if any(re.match(r"gunicorn\b", dep) for dep in project["dependencies"]):
        commands["gunicorn"] = "gunicorn.app.wsgiapp:run"
    return commands


def exact(parser: argparse.ArgumentParser) -> None:
    """No abbreviated flags (`--rat` for `--rate`): a renamed flag must fail the test, not
    happen to be a prefix of the new name."""
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                exact(sub)


def check_command(argv: list[str], where: str) -> None:
    """`argv` is a command the image provides, with arguments its parser accepts."""
    assert argv, f"{where}: empty command"
    program, args = argv[0], argv[1:]
    assert program in installed_commands(), f"{where}: {program!r} is not installed by the image"
    if program == "oddstream":
        assert pyproject()["project"]["scripts"]["oddstream"] == "oddstream.cli:main"
        parser = oddstream_parser()
    else:
        parser = GunicornConfig().parser()
    exact(parser)
    try:
        parsed = parser.parse_args(args)
    except SystemExit:
        raise AssertionError(f"{where}: `{' '.join(argv)}` is refused by its parser") from None
    if program == "gunicorn":
        assert parsed.args == [GATEWAY_APP], f"{where}: gunicorn serves {parsed.args}"
        module, attr = GATEWAY_APP.split(":")
        assert asyncio.iscoroutinefunction(getattr(__import__(module, fromlist=[attr]), attr))
        assert parsed.config == "deploy/gunicorn.conf.py", f"{where}: config {parsed.config}"


# --- the Dockerfile -------------------------------------------------------------------------


@dataclass
class Stage:
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"Dockerfile: no {keyword} in stage {self.name}"
        return found[-1]


def dockerfile_stages() -> list[Stage]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            stages.append(Stage(words[2] if len(words) > 2 and words[1].upper() == "AS" else None))
        assert stages, "Dockerfile: an instruction before FROM"
        stages[-1].instructions.append((keyword, args))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in stage.all("ENV"):
        for word in args.split():
            name, sep, value = word.partition("=")
            assert sep, f"Dockerfile: ENV {word!r}: use NAME=value"
            env[name] = value
    return env


def copies(stage: Stage) -> list[tuple[list[str], str, bool]]:
    """(sources, destination, from another stage) per COPY."""
    found = []
    for args in stage.all("COPY"):
        words = args.split()
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        found.append((paths[:-1], paths[-1], any(f.startswith("--from") for f in flags)))
    return found


def image_files(stage: Stage) -> dict[PurePosixPath, Path]:
    """Path in the image -> the repository path it was copied from (files and folders)."""
    files: dict[PurePosixPath, Path] = {}
    workdir = PurePosixPath("/")
    for keyword, args in stage.instructions:
        if keyword == "WORKDIR":
            workdir = workdir / args
        if keyword == "COPY":
            (sources, dest, from_stage), *_ = copies(Stage(None, [(keyword, args)]))
            if from_stage:
                continue
            target = workdir / dest
            for source in sources:
                into_folder = dest.endswith("/") or len(sources) > 1
                files[target / PurePosixPath(source).name if into_folder else target] = (
                    ROOT / source
                )
    return files


def in_image(path: str, stage: Stage) -> Path:
    """The repository file behind `path` (relative to the final WORKDIR) in the image."""
    full = PurePosixPath(stage.last("WORKDIR")) / path
    for image_path, repo_path in image_files(stage).items():
        if full == image_path or image_path in full.parents:
            found = repo_path / full.relative_to(image_path)
            assert found.is_file(), f"{path}: {found} is not a file"
            return found
    raise AssertionError(f"{path} ({full}) is not in the image")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                regex, index = regex + "(?:.*/)?", index + 3
            elif pattern.startswith("**", index):
                regex, index = regex + ".*", index + 2
            else:
                char = pattern[index]
                regex += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
                index += 1
        rules.append((negate, re.compile(regex + r"\Z")))
    return rules


def in_build_context(relative: str) -> bool:
    """Whether Docker sends `relative` (a repository path) with the build context: the last
    .dockerignore rule matching it or one of its parent folders decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negate, regex in dockerignore_rules():
        if any(regex.match(p) for p in prefixes):
            included = negate
    return included


def tracked_files(path: str) -> list[str]:
    """The repository's files under `path`: tracked or new, not ignored."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", path],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_dockerfile_runs_the_gateway_as_a_non_root_user_with_real_commands() -> None:
    stages = dockerfile_stages()
    final = stages[-1]
    assert final.last("FROM").startswith("python:3.11-slim")
    user = final.last("USER").split(":")[0]
    assert user not in {"root", "0"} and user.isdigit(), "USER must be a numeric non-root uid"
    assert any(f"--uid {user}" in run for run in final.all("RUN")), "the user is created"

    cmd = json.loads(final.last("CMD"))
    assert cmd[0] == "gunicorn", "the image's default process is the production gateway"
    check_command(cmd, "Dockerfile CMD")
    # ...with the README's production command, word for word.
    readme = (ROOT / "README.md").read_text()
    assert f"gunicorn '{GATEWAY_APP}' -c deploy/gunicorn.conf.py" in readme
    assert in_image(cmd[-1], final).samefile(GUNICORN_CONF)
    assert "ENTRYPOINT" not in {kw for kw, _ in final.instructions}, "CMD stays replaceable"

    env = env_of(final)
    settings_from(env, "Dockerfile ENV")  # every variable a setting, every value valid
    assert "/opt/oddstream/bin" in env["PATH"].split(":")
    bind = gunicorn_settings(env)["bind"]
    assert bind == f"0.0.0.0:{env['ODDSTREAM_PORT']}", "the gateway listens beyond the container"
    assert final.last("EXPOSE").split("/")[0] == env["ODDSTREAM_PORT"]

    health = final.last("HEALTHCHECK")
    probe = json.loads(health.split(" CMD ", 1)[1])
    assert probe[0] == "python"
    assert in_image(probe[1], final).samefile(DOCKER / "healthcheck.py")
    assert final.last("STOPSIGNAL") == "SIGTERM"


def test_docker_build_context_holds_what_pip_install_reads() -> None:
    """Every COPY source is sent with the build context, in full (what git tracks, less the
    client's tests and caches); `pip install .` has the readme and the local client it
    needs; the package's links to gateway/, workers/ and shared/ land inside the image."""
    stages = dockerfile_stages()
    build = next(s for s in stages if any("pip install ." in r for r in s.all("RUN")))
    sources: list[str] = []
    for stage in stages:
        for srcs, _dest, from_stage in copies(stage):
            if not from_stage:
                sources.extend(srcs)
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such path"
        files = tracked_files(source)
        assert files, f"COPY {source}: nothing tracked there"
        left_out = [
            f
            for f in files
            if not in_build_context(f) and not f.startswith("clients/python/tests/")
        ]
        assert not left_out, f".dockerignore leaves out what the image copies: {left_out[:5]}"
    assert not in_build_context("tests/conftest.py"), ".dockerignore keeps the context small"
    assert not in_build_context("gateway/__pycache__/app.cpython-311.pyc")

    build_sources = {s for srcs, _d, f in copies(build) if not f for s in srcs}
    project = pyproject()["project"]
    assert project["readme"] in build_sources
    assert "pyproject.toml" in build_sources
    for dependency in project["dependencies"]:
        if "{root:uri}/" in dependency:
            assert dependency.split("{root:uri}/")[1] in build_sources, dependency
    package = pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"][0]
    assert package in build_sources
    for link in (ROOT / package).iterdir():
        if link.is_symlink():
            target = os.path.relpath(link.resolve(), ROOT)
            assert target in build_sources, f"{link.name} -> {target} is not copied"


async def test_image_healthcheck_answers_for_a_live_gateway_only(settings: Settings) -> None:
    script = str(DOCKER / "healthcheck.py")

    def check(port: int) -> int:
        env = {**os.environ, "ODDSTREAM_PORT": str(port)}
        return subprocess.run(
            [sys.executable, script], env=env, capture_output=True, timeout=10
        ).returncode

    async with running_gateway(settings) as gateway:
        assert await asyncio.to_thread(check, gateway.port) == 0
        port = gateway.port
    assert await asyncio.to_thread(check, port) == 1, "a closed port is unhealthy"


# --- docker-compose.yml -----------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def compose_environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's variables; a name without a value passes the host's through (unset here)."""
    raw = service.get("environment", {})
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    env = {name: str(value).lower() if isinstance(value, bool) else str(value)
           for name, value in raw.items() if value is not None}  # fmt: skip
    assert not any("${" in v for v in env.values()), "no interpolation: tests read values as is"
    for name in raw:
        assert name in KNOWN_VARIABLES, f"compose: {name} is not a setting"
    return env


def compose_command(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    if command is None:
        return list(json.loads(dockerfile_stages()[-1].last("CMD")))
    assert isinstance(command, list), "commands in exec form (a list), as the Dockerfile's"
    return [str(word) for word in command]


def compose_services(kind: str) -> dict[str, dict[str, Any]]:
    """The services running the image as `kind` (gateway, worker or simulate)."""
    found = {}
    for name, service in compose()["services"].items():
        if service.get("build") is None:
            continue
        argv = compose_command(service)
        role = "gateway" if argv[0] == "gunicorn" else argv[1]
        if role == kind:
            found[name] = service
    return found


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_compose_runs_the_whole_system_with_real_settings_and_commands() -> None:
    services = compose()["services"]
    assert len(compose_services("gateway")) == 2
    assert len(compose_services("worker")) == 2
    assert len(compose_services("simulate")) == 1
    assert {"redis", "nginx"} <= set(services)

    redis_command = services["redis"]["command"]
    assert redis_command[:3] == ["redis-server", "--appendonly", "yes"], "Redis is append-only"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"]), "...on a volume"

    partitions = set()
    for name, service in services.items():
        if service.get("build") is None:
            continue
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert (COMPOSE.parent / service["build"]["context"]).resolve() == ROOT
        check_command(compose_command(service), f"compose {name}")
        env = compose_environment(service)
        settings = settings_from(env, f"compose {name}")
        assert urlsplit(settings.effective_redis_url).hostname == "redis", "the compose Redis"
        partitions.add(settings.partitions)
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert len(partitions) == 1, "every process of a deployment uses the same partitions"


def test_compose_gateways_are_healthchecked_and_drain_before_they_are_killed() -> None:
    for name, service in compose_services("gateway").items():
        env = compose_environment(service)
        settings = settings_from(env, f"compose {name}")
        assert gunicorn_settings(env)["workers"] == 1, "one gateway process per container"
        assert settings.env == "production", f"{name}: held to the production checks"
        probe = service["healthcheck"]["test"]
        assert probe[0] == "CMD" and probe[1] == "python"
        assert in_image(probe[2], dockerfile_stages()[-1]).samefile(DOCKER / "healthcheck.py")
        stop = float(service["stop_grace_period"].rstrip("s"))
        assert stop > settings.shutdown_grace, f"{name}: killed before it has drained"
        assert gunicorn_settings(env)["graceful_timeout"] < stop
    for name in [*compose_services("worker"), *compose_services("simulate")]:
        assert compose()["services"][name]["healthcheck"] == {"disable": True}, (
            f"{name} has no HTTP port: the image's /healthz check must be off"
        )


# --- nginx.conf ---------------------------------------------------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str, *args: str) -> Directive:
        found = [d for d in self.find(name) if list(d.args[: len(args)]) == list(args)]
        assert len(found) == 1, f"nginx: {self.name} {self.args}: {len(found)}x {name} {args}"
        return found[0]


def nginx_tokens(text: str) -> Iterator[str]:
    index = 0
    while index < len(text):
        char = text[index]
        if char.isspace():
            index += 1
        elif char == "#":
            index = text.find("\n", index) if "\n" in text[index:] else len(text)
        elif char in "{};":
            yield char
            index += 1
        elif char in "\"'":
            end = text.index(char, index + 1)
            yield text[index + 1 : end]
            index = end + 1
        else:
            end = index
            while end < len(text) and not text[end].isspace() and text[end] not in "{};#":
                end += 1
            yield text[index:end]
            index = end


def nginx_config() -> Directive:
    stack: list[Directive] = [Directive("main", [], [])]
    words: list[str] = []
    for token in nginx_tokens(NGINX.read_text()):
        if token == ";":
            assert words, "nginx: an empty directive"
            stack[-1].block.append(Directive(words[0], words[1:]))
            words = []
        elif token == "{":
            block = Directive(words[0], words[1:], [])
            stack[-1].block.append(block)
            stack.append(block)
            words = []
        elif token == "}":
            assert not words and len(stack) > 1, "nginx: unbalanced braces"
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "nginx: unterminated block"
    return stack[0]


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+)(ms|s|m|h|d)?", value)
    assert match, f"not an nginx time: {value}"
    return int(match[1]) * units[match[2] or "s"]


def test_nginx_proxies_websockets_round_robin_to_the_compose_gateways() -> None:
    http = nginx_config().one("http")
    upstream = http.one("upstream")
    for sticky in ("ip_hash", "hash", "sticky", "least_conn", "random"):
        assert not upstream.find(sticky), f"{sticky}: clients resume on any gateway, round-robin"
    servers = {d.args[0] for d in upstream.find("server")}
    gateways = compose_services("gateway")
    expected = set()
    for name, service in gateways.items():
        env = compose_environment(service)
        port = settings_from(env, name).port
        assert gunicorn_settings(env)["bind"].endswith(f":{port}")
        expected.add(f"{name}:{port}")  # compose resolves service names
    assert servers == expected, "the upstream is every compose gateway on its port"

    location = http.one("server").one("location", "/")
    assert location.one("proxy_pass").args == [f"http://{upstream.args[0]}"]
    assert location.one("proxy_http_version").args == ["1.1"]
    headers = {d.args[0].lower(): d.args[1] for d in location.find("proxy_set_header")}
    assert headers["upgrade"] == "$http_upgrade"
    connection = headers["connection"]
    if connection.startswith("$"):  # a map from $http_upgrade: "upgrade" for any upgrade
        mapping = next(m for m in http.find("map") if m.args == ["$http_upgrade", connection])
        assert {d.name: d.args for d in mapping.block or []}["default"] == ["upgrade"]
    else:
        assert connection.lower() == "upgrade"
    assert headers["x-forwarded-for"] == "$proxy_add_x_forwarded_for"
    # The gateway's own origin (what a page's Origin must match) is the host and port the
    # browser used, and its scheme: $host would drop the port.
    assert headers["x-forwarded-proto"] == "$scheme"
    assert headers["x-forwarded-host"] == "$http_host"
    assert headers["host"] == "$http_host"
    assert location.one("proxy_buffering").args == ["off"]
    # A draining gateway answers new handshakes 503: nginx tries the other one instead.
    assert "http_503" in location.one("proxy_next_upstream").args

    settings = [settings_from(compose_environment(s), n) for n, s in gateways.items()]
    for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
        value = seconds(location.one(timeout).args[0])
        assert all(value > 2 * s.heartbeat_interval for s in settings), f"{timeout} too short"
        assert value >= 3600, f"{timeout}: a WebSocket lives for hours"

    # The gateways believe this proxy's X-Forwarded-For: its address is a trusted proxy.
    nginx = compose()["services"]["nginx"]
    address = nginx["networks"]["oddstream"]["ipv4_address"]
    for s in settings:
        trusted = parse_networks(s.trusted_proxies)
        assert any(ipaddress.ip_address(address) in n for n in trusted), "nginx is not trusted"
    mount = next(v for v in nginx["volumes"] if v.endswith(":/etc/nginx/nginx.conf:ro"))
    assert (COMPOSE.parent / mount.split(":")[0]).resolve() == NGINX
    for gateway in gateways:
        assert nginx["depends_on"][gateway]["condition"] == "service_healthy"

    routes = gateway_routes()
    for loc in http.one("server").find("location"):
        path = loc.args[-1]
        assert path == "/" or path in routes, f"location {path} is no gateway route"


def nginx_upstream_headers(browser_host: str, scheme: str, client_ip: str) -> dict[str, str]:
    """The headers nginx.conf's `location /` sends a gateway for a browser's WebSocket
    handshake to `scheme://browser_host`, its variables filled in as nginx would."""
    http = nginx_config().one("http")
    location = http.one("server").one("location", "/")
    variables = {
        "$http_host": browser_host,
        "$host": browser_host.split(":")[0],
        "$scheme": scheme,
        "$proxy_add_x_forwarded_for": client_ip,
        "$http_upgrade": "websocket",
    }
    for mapping in http.find("map"):
        source = variables[mapping.args[0]]
        rows = {d.name: d.args for d in mapping.block or []}
        variables[mapping.args[1]] = (rows.get(source) or rows["default"])[0]
    return {
        d.args[0]: variables.get(d.args[1], d.args[1]) for d in location.find("proxy_set_header")
    }


async def test_a_page_served_through_nginx_is_the_gateways_own_origin(settings: Settings) -> None:
    """What nginx.conf sends a gateway that trusts it (compose: ODDSTREAM_TRUSTED_PROXIES, here
    this machine stands for nginx): the dashboard's handshake from http://localhost:8080 is
    accepted without listing any origin, another site's is refused; had nginx sent `$host`
    (no port), the dashboard's own would be refused too."""
    gateway_env = compose_environment(next(iter(compose_services("gateway").values())))
    assert not settings_from(gateway_env, "compose gateway").allowed_origins, "no origin listed"
    behind_nginx = settings.model_copy(update={"trusted_proxies": ["127.0.0.1"]})
    sent = nginx_upstream_headers("localhost:8080", "http", "203.0.113.7")
    async with running_gateway(behind_nginx) as gateway:
        url = f"{gateway.ws}/ws/v2/connect"
        client = await Client.connect(url, headers={**sent, "Origin": "http://localhost:8080"})
        await client.close()
        async with aiohttp.ClientSession() as session:
            for origin, headers in (
                ("https://evil.test", sent),
                ("http://localhost:8080", {**sent, "X-Forwarded-Host": "localhost"}),
            ):
                with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                    await session.ws_connect(url, headers={**headers, "Origin": origin})
                assert refused.value.status == 403


# --- Kubernetes -------------------------------------------------------------------------------


def k8s_documents() -> dict[str, list[dict[str, Any]]]:
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        docs[path.name] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def k8s_objects() -> list[dict[str, Any]]:
    return [
        d for name, docs in k8s_documents().items() if name != "kustomization.yaml" for d in docs
    ]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [o for o in k8s_objects() if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


#: The Prometheus Operator's duration format (30s, 1m30s, ...).
_DURATION = (
    "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_K8S_DEFS = (
    "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1."
)
#: monitoring.coreos.com/v1 ServiceMonitor, the fields these manifests may use, with the
#: Prometheus Operator's names, types and formats; nothing else allowed.
SERVICE_MONITOR: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {"$ref": _K8S_DEFS + "ObjectMeta"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "jobLabel": {"type": "string"},
                "selector": {"$ref": _K8S_DEFS + "LabelSelector"},
                "namespaceSelector": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "any": {"type": "boolean"},
                        "matchNames": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": {"type": "string", "pattern": _DURATION},
                            "scrapeTimeout": {"type": "string", "pattern": _DURATION},
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_are_valid_against_the_kubernetes_schemas(version: str) -> None:
    checked = set()
    for name, docs in k8s_documents().items():
        if name == "kustomization.yaml":
            continue
        for doc in docs:
            where = f"{name}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            if doc.get("kind") == "ServiceMonitor":
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                raise AssertionError(f"{where} (Kubernetes {version}): {exc}") from None
            checked.add(doc["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
            "ConfigMap", "Secret", "Namespace"} <= checked  # fmt: skip
    assert {o["apiVersion"] for o in k8s_objects() if o["kind"] == "HorizontalPodAutoscaler"} == {
        "autoscaling/v2"
    }
    assert {o["apiVersion"] for o in k8s_objects() if o["kind"] == "PodDisruptionBudget"} == {
        "policy/v1"
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_servicemonitor_is_valid_and_scrapes_the_gateways_metrics(version: str) -> None:
    definitions = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )
    registry: Registry[Any] = Resource.from_contents(definitions) @ Registry()
    monitor = k8s_object("ServiceMonitor", "oddstream-gateway")
    validator = jsonschema.Draft202012Validator(SERVICE_MONITOR, registry=registry)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(monitor)]
    assert not errors, errors
    # ...and catches what it should: an unknown field, a bad duration.
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["intervall"] = "15s"
    assert not validator.is_valid(broken)
    broken = json.loads(json.dumps(monitor))
    broken["spec"]["endpoints"][0]["interval"] = "15 seconds"
    assert not validator.is_valid(broken)

    service = k8s_object("Service", "oddstream-gateway")
    labels = service["metadata"]["labels"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items(), "the ServiceMonitor selects the gateway Service"
    assert monitor["metadata"].get("namespace", "oddstream") == kustomization()["namespace"]
    ports = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports
        assert endpoint["path"] in gateway_routes()
        assert endpoint["path"] == "/metrics"


def kustomization() -> dict[str, Any]:
    (doc,) = k8s_documents()["kustomization.yaml"]
    return doc


def test_kustomization_applies_every_manifest_but_the_secret_and_the_crd() -> None:
    k = kustomization()
    assert k["kind"] == "Kustomization"
    listed = set(k["resources"])
    for resource in listed:
        assert (K8S / resource).is_file(), f"kustomization lists {resource}: no such file"
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk - APPLIED_ALONE
    assert not listed & APPLIED_ALONE
    # The images it retags are the ones the Deployments run.
    images = {i["name"] for i in k.get("images", [])}
    for deployment in (o for o in k8s_objects() if o["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert container["image"].split(":")[0] in images
    namespaces = [o for o in k8s_objects() if o["kind"] == "Namespace"]
    assert [n["metadata"]["name"] for n in namespaces] == [k["namespace"]]


def example_secrets() -> dict[str, str]:
    """secret.example.yaml's values, as they are."""
    data: dict[str, str] = k8s_object("Secret", "oddstream")["stringData"]
    return dict(data)


def deployed_secrets() -> dict[str, str]:
    """The example's values as an operator fills them in: real random secrets."""
    return {**example_secrets(), "JWT_SECRET": STRONG_SECRET, "ODDSTREAM_ADMIN_TOKEN": ADMIN}


def container_env(
    deployment: dict[str, Any], secrets: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The variables the Deployment's container gets: its ConfigMaps (envFrom), its own
    values, and the Secret's keys (secret.example.yaml names them; values from `secrets`,
    deployed_secrets() by default). Names are checked too."""
    values = deployed_secrets() if secrets is None else secrets
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(k8s_object("ConfigMap", ref)["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "oddstream", "the Secret secret.example.yaml describes"
        assert ref["key"] in example_secrets(), f"{ref['key']} not in secret.example.yaml"
        assert item["name"] == ref["key"], "a Secret key is named after its variable"
        env[item["name"]] = values[ref["key"]]
    where = deployment["metadata"]["name"]
    for name in env:
        assert name in KNOWN_VARIABLES, f"{where}: {name} is not a setting"
    return env


def test_k8s_deployments_run_real_commands_with_real_settings() -> None:
    gateway = k8s_object("Deployment", "oddstream-gateway")
    worker = k8s_object("Deployment", "oddstream-worker")
    all_settings = []
    for deployment in (gateway, worker):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        argv = [*container.get("command", []), *container.get("args", [])]
        check_command(argv, deployment["metadata"]["name"])
        all_settings.append(
            settings_from(container_env(deployment), deployment["metadata"]["name"])
        )
        assert "valueFrom" in next(e for e in container["env"] if e["name"] == "REDIS_URL"), (
            "REDIS_URL (it may hold a password) comes from the Secret"
        )
    assert gateway["spec"]["template"]["spec"]["containers"][0]["command"][0] == "gunicorn"
    assert worker["spec"]["template"]["spec"]["containers"][0]["command"] == ["oddstream", "worker"]
    (jwt,) = [e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
              if e["name"] == "JWT_SECRET"]  # fmt: skip
    assert jwt["valueFrom"]["secretKeyRef"]["name"] == "oddstream", "JWT_SECRET from the Secret"
    assert not jwt["valueFrom"]["secretKeyRef"].get("optional"), "no gateway without its secret"
    assert len({s.partitions for s in all_settings}) == 1, "gateways and workers agree"
    assert all_settings[0].jwt_secret is not None
    assert all_settings[0].env == "production", "the deployed gateway is held to production"


def test_k8s_secret_example_cannot_be_deployed_unchanged() -> None:
    """The example's JWT_SECRET is a placeholder the production check refuses, so a copy
    applied as it is stops the gateway instead of accepting forged tokens; filled in with a
    random secret, the same settings start."""
    gateway = k8s_object("Deployment", "oddstream-gateway")
    as_is = settings_from(container_env(gateway, example_secrets()), "example secret")
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        check_production_secrets(as_is)
    check_production_secrets(settings_from(container_env(gateway), "deployed secret"))


def test_k8s_gateway_probes_port_and_shutdown_budget_match_the_gateway() -> None:
    gateway = k8s_object("Deployment", "oddstream-gateway")
    pod = gateway["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = container_env(gateway)
    settings = settings_from(env, "oddstream-gateway")
    gunicorn = gunicorn_settings(env)
    assert gunicorn["workers"] == 1, "one gateway process per pod: /metrics is the whole pod"
    # A read-only root filesystem, but gunicorn writes its heartbeat files and control socket
    # to the image's XDG_RUNTIME_DIR (/tmp): a writable volume there.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    runtime_dir = env_of(dockerfile_stages()[-1])["XDG_RUNTIME_DIR"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == runtime_dir)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume and not mount.get("readOnly")

    (port,) = container["ports"]
    assert gunicorn["bind"] == f"0.0.0.0:{port['containerPort']}"
    assert settings.port == port["containerPort"]
    routes = gateway_routes()
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if probe in container:
            assert container[probe]["httpGet"]["path"] in routes
            assert container[probe]["httpGet"]["port"] in (port["name"], port["containerPort"])
    service = k8s_object("Service", "oddstream-gateway")
    assert service["spec"]["selector"].items() <= pod_labels(gateway).items()
    assert (
        not service["spec"]["selector"].items()
        <= pod_labels(k8s_object("Deployment", "oddstream-worker")).items()
    ), "the Service sends no traffic to workers"
    assert service["spec"].get("sessionAffinity", "None") == "None", "sticky-free"
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {port["name"]}

    # Shutdown: preStop (load balancers stop routing), then SIGTERM and the drain, all within
    # terminationGracePeriodSeconds; gunicorn gives its workers the drain time.
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    pause = float(pre_stop[1])
    assert pause >= 2, "give the load balancers time to stop routing first"
    budget = pod["terminationGracePeriodSeconds"]
    assert gunicorn["graceful_timeout"] >= settings.shutdown_grace
    assert pause + gunicorn["graceful_timeout"] < budget, "the drain would be killed"


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    return labels


def test_k8s_autoscalers_budgets_and_security() -> None:
    deployments = {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == "Deployment"}
    assert set(deployments) == {"oddstream-gateway", "oddstream-worker"}
    scaled = {}
    for hpa in (o for o in k8s_objects() if o["kind"] == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        scaled[target["name"]] = hpa
    assert set(scaled) == set(deployments)
    worker_settings = settings_from(container_env(deployments["oddstream-worker"]), "worker")
    assert scaled["oddstream-worker"]["spec"]["maxReplicas"] <= worker_settings.partitions, (
        "workers beyond the partitions have nothing to read"
    )

    budgets = [o for o in k8s_objects() if o["kind"] == "PodDisruptionBudget"]
    for name, deployment in deployments.items():
        labels = pod_labels(deployment)
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items()
                    <= labels.items()]  # fmt: skip
        assert len(matching) == 1, f"{name}: one PodDisruptionBudget"
        assert deployment["spec"]["replicas"] >= 2
        assert scaled[name]["spec"]["minReplicas"] >= 2, f"{name}: a disruption leaves one"

        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        image_user = dockerfile_stages()[-1].last("USER").split(":")[0]
        assert str(pod["securityContext"]["runAsUser"]) == image_user, "the image's own user"
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]) <= set(resources["limits"])


# --- the commands, run ------------------------------------------------------------------------


def local_argv(argv: list[str]) -> list[str]:
    """The image's command as this test runs it: the same program from this interpreter."""
    module = {"gunicorn": "gunicorn", "oddstream": "oddstream.cli", "python": None}[argv[0]]
    if module is None:
        return [sys.executable, *argv[1:]]
    return [sys.executable, "-m", module, *argv[1:]]


def process_env(
    deployed: Mapping[str, str], redis_url: str, prefix: str, **extra: str
) -> dict[str, str]:
    """The deployed environment on this machine: the test Redis and key prefix, loopback."""
    env = {k: v for k, v in os.environ.items() if k not in KNOWN_VARIABLES}
    env.update(deployed)
    env.update(REDIS_URL=redis_url, ODDSTREAM_REDIS_PREFIX=prefix, ODDSTREAM_LOG_LEVEL="WARNING")
    env.update(extra)
    return env


def start(
    processes: list[subprocess.Popen[bytes]], argv: list[str], env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """The image's command, with the image's working directory laid out as the repository
    (the Dockerfile copies deploy/ files to the same paths under WORKDIR; checked above)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(local_argv(argv), cwd=ROOT, env=env, stdout=out, stderr=out)
    processes.append(proc)
    return proc


async def http_status(url: str) -> int:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status
    except aiohttp.ClientError:
        return 0


@pytest.mark.slow
async def test_compose_stack_commands_serve_data_and_drain(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """The compose gateway (gunicorn), a worker and the simulator, with their compose
    environments: the gateway passes its healthcheck, a client gets the simulator's odds, and
    SIGTERM drains it (1001) well within stop_grace_period."""
    redis_url, prefix = settings.effective_redis_url, settings.redis_prefix
    port = free_port()
    (gateway_name, gateway), *_ = compose_services("gateway").items()
    worker = next(iter(compose_services("worker").values()))
    simulator = next(iter(compose_services("simulate").values()))
    fast = {"ODDSTREAM_CANARY_INTERVAL": "0.5"}
    gateway_env = process_env(
        compose_environment(gateway), redis_url, prefix,
        ODDSTREAM_HOST="127.0.0.1", ODDSTREAM_PORT=str(port), **fast,
    )  # fmt: skip
    master = start(processes, compose_command(gateway), gateway_env, tmp_path / "gateway.log")
    start(processes, compose_command(worker),
          process_env(compose_environment(worker), redis_url, prefix, **fast),
          tmp_path / "worker.log")  # fmt: skip
    start(processes, compose_command(simulator),
          process_env(compose_environment(simulator), redis_url, prefix),
          tmp_path / "simulator.log")  # fmt: skip

    probe = local_argv(gateway["healthcheck"]["test"][1:])

    def healthcheck() -> int:
        return subprocess.run(probe, cwd=ROOT, env=gateway_env, timeout=10).returncode

    async def healthy() -> bool:
        return await asyncio.to_thread(healthcheck) == 0

    async def ready() -> bool:
        return await http_status(f"http://127.0.0.1:{port}/readyz") == 200

    await wait_until(healthy, timeout=20, interval=0.3, message=f"{gateway_name} healthy")
    await wait_until(ready, timeout=20, interval=0.3, message=f"{gateway_name} ready")
    client = await Client.connect(f"ws://127.0.0.1:{port}/ws/v2/connect")
    try:
        await client.subscribe("odds_updates")
        await client.next_of("odds_update", timeout=15)
        stop_grace = float(gateway["stop_grace_period"].rstrip("s"))
        sent = time.monotonic()
        master.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(master.wait, stop_grace) == 0
        assert time.monotonic() - sent < stop_grace
        await wait_until(lambda: client.closed_code is not None, message="client closed")
        assert client.closed_code == 1001
    finally:
        await client.close()
    assert await asyncio.to_thread(healthcheck) == 1, "a stopped gateway is unhealthy"


@pytest.mark.slow
async def test_k8s_commands_pass_their_probes_and_drain_within_the_grace_period(
    settings: Settings, processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    """The Kubernetes gateway and worker containers' commands and environments (ConfigMap,
    Secret example): the probes answer on the probe port, and after SIGTERM the gateway has
    drained and exited within terminationGracePeriodSeconds less the preStop pause."""
    redis_url, prefix = settings.effective_redis_url, settings.redis_prefix
    gateway = k8s_object("Deployment", "oddstream-gateway")
    worker = k8s_object("Deployment", "oddstream-worker")
    pod = gateway["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (worker_container,) = worker["spec"]["template"]["spec"]["containers"]
    port = free_port()
    fast = {"ODDSTREAM_CANARY_INTERVAL": "0.5"}
    gateway_env = process_env(
        container_env(gateway), redis_url, prefix,
        ODDSTREAM_HOST="127.0.0.1", ODDSTREAM_PORT=str(port), **fast,
    )  # fmt: skip
    master = start(processes, container["command"], gateway_env, tmp_path / "gateway.log")
    start(processes, worker_container["command"],
          process_env(container_env(worker), redis_url, prefix, **fast),
          tmp_path / "worker.log")  # fmt: skip

    base = f"http://127.0.0.1:{port}"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = container[probe]["httpGet"]["path"]

        async def passes(path: str = path) -> bool:
            return await http_status(base + path) == 200

        await wait_until(passes, timeout=20, interval=0.3, message=f"{probe} {path}")

    clients = [await Client.connect(f"ws://127.0.0.1:{port}/ws/v2/connect") for _ in range(3)]
    try:
        for c in clients:
            await c.subscribe("odds_updates")
        budget = pod["terminationGracePeriodSeconds"] - float(
            container["lifecycle"]["preStop"]["exec"]["command"][1]
        )
        sent = time.monotonic()
        master.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(master.wait, budget) == 0
        assert time.monotonic() - sent < budget
        await wait_until(lambda: all(c.closed_code is not None for c in clients), message="closed")
        assert {c.closed_code for c in clients} == {1001}, "drained, not cut off"
    finally:
        for c in clients:
            await c.close()
