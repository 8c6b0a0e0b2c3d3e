"""Read infra/compose.yaml as ``docker compose`` would, without a Docker engine: YAML with
merge keys, ``${VAR}`` interpolation from an env file (the forms of the Compose
Specification: ``${V}``, ``${V:-d}``, ``${V-d}``, ``${V:?e}``, ``${V?e}``, ``$$``), the
image's ENTRYPOINT/ENV (infra/Dockerfile) under each AutoBiz service's ``command``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE_FILE = INFRA / "compose.yaml"
ENV_EXAMPLE = INFRA / ".env.example"
DOCKERFILE = INFRA / "Dockerfile"

_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (comments, blanks skipped; one pair of quotes stripped)."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path.name}: not KEY=VALUE: {line!r}")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def variables_used(text: str) -> set[str]:
    return {m["name"] or m["bare"] for m in _VAR.finditer(text) if not m["escaped"]}


def interpolate(value: str, env: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name = m["name"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        have = env.get(name)
        unset_or_empty = have is None or (have == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-"):
            return arg if (have is None if op == "-" else unset_or_empty) else str(have)
        if op in ("?", ":?"):
            if have is None if op == "?" else unset_or_empty:
                raise InterpolationError(f"{name}: {arg}")
            return str(have)
        return have or ""

    return _VAR.sub(sub, value)


def _walk(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(n, env) for n in node]
    if isinstance(node, dict):
        return {k: _walk(v, env) for k, v in node.items()}
    return node


def load_raw() -> dict[str, Any]:
    """The file as YAML (anchors and ``<<`` merges resolved), not interpolated."""
    doc = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(doc, dict)
    return doc


def load(env: dict[str, str]) -> dict[str, Any]:
    """The model compose works with: extension fields dropped, values interpolated."""
    doc = {k: v for k, v in load_raw().items() if not k.startswith("x-")}
    return dict(_walk(doc, env))


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(k): "" if v is None else str(v) for k, v in raw.items()}


@dataclass
class Mount:
    source: Path  # on the host
    target: str  # in the container
    read_only: bool


def mounts(model: dict[str, Any], name: str) -> list[Mount]:
    """The service's bind mounts and file secrets, sources resolved against infra/
    (the project directory); named volumes are not host paths and are left out."""
    service = model["services"][name]
    found: list[Mount] = []
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            if not parts[0].startswith((".", "/", "~")):
                continue  # a named volume
            found.append(Mount(_host(parts[0]), parts[1], "ro" in parts[2:]))
        elif vol.get("type", "volume") == "bind":
            found.append(Mount(_host(vol["source"]), vol["target"], bool(vol.get("read_only"))))
    for secret in service.get("secrets") or []:
        source = secret if isinstance(secret, str) else secret["source"]
        target = source if isinstance(secret, str) else secret.get("target", source)
        path = target if target.startswith("/") else f"/run/secrets/{target}"
        found.append(Mount(_host(model["secrets"][source]["file"]), path, True))
    return found


def _host(path: str) -> Path:
    return (INFRA / Path(path).expanduser()).resolve()


@dataclass
class Image:
    """The final stage of infra/Dockerfile, as far as a container of it needs."""

    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    workdir: str | None = None
    healthcheck: list[str] | None = None


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments out."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each stage (the ARGs before the first FROM are dropped)."""
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions(text):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def _exec_form(args: str) -> list[str]:
    parsed = yaml.safe_load(args)
    assert isinstance(parsed, list), f"not the exec form: {args}"
    return [str(a) for a in parsed]


def _env_pairs(args: str) -> dict[str, str]:
    return dict(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", args))


def final_image(text: str | None = None) -> Image:
    final = stages(text if text is not None else DOCKERFILE.read_text())[-1]
    image = Image(entrypoint=[], cmd=[])
    for word, args in final:
        if word == "ENTRYPOINT":
            image.entrypoint = _exec_form(args)
        elif word == "CMD":
            image.cmd = _exec_form(args)
        elif word == "ENV":
            image.env.update(_env_pairs(args))
        elif word == "USER":
            image.user = args
        elif word == "WORKDIR":
            image.workdir = args
        elif word == "HEALTHCHECK":
            _, _, cmd = args.partition("CMD ")
            image.healthcheck = _exec_form(cmd) if cmd else None
    return image


def container_argv(image: Image, service: dict[str, Any]) -> list[str]:
    """ENTRYPOINT + command, as Docker combines them (a service entrypoint replaces it)."""
    entrypoint = service.get("entrypoint", image.entrypoint)
    command = service.get("command", image.cmd)
    if isinstance(entrypoint, str) or isinstance(command, str):
        raise AssertionError("use the exec form (a list) for entrypoint and command")
    return [*entrypoint, *command]


def builds_our_image(service: dict[str, Any]) -> bool:
    build = service.get("build")
    return isinstance(build, dict) and str(build.get("dockerfile", "")).endswith("infra/Dockerfile")
