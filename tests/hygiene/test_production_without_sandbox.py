"""Production runs without the sandbox (#11): the image ships no ``sandbox`` package, so
every production module, the worker, the ingress and the CLI entry point import without
it; ``autobiz --help`` and the production commands work; the commands that need the
sandbox refuse with ``error[SANDBOX_NOT_INSTALLED]`` and exit 2, no traceback.

Each check runs in a fresh Python whose import system refuses ``sandbox`` and its
submodules (the package stays in the checkout; a meta-path hook hides it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from autobiz.errors import ExitCode

pytestmark = pytest.mark.hygiene

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"
# What the production image holds (infra/Dockerfile), the roof's CLI included.
PRODUCTION = ("kernel", "autobiz", "workflows", "activities", "starters", "ingress", "workers")

# Prepended to every child: `import sandbox` / `import sandbox.x` fails as if absent.
HIDE_SANDBOX = """
import sys

class _NoSandbox:
    def find_spec(self, name, path=None, target=None):
        if name == "sandbox" or name.startswith("sandbox."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoSandbox())
"""

IMPORT_ALL = """
import importlib, json, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
leaked = sorted(m for m in sys.modules if m == "sandbox" or m.startswith("sandbox."))
print(json.dumps({"failed": failed, "leaked": leaked}))
"""

RUN_CLI = """
sys.argv = ["autobiz", *sys.argv[1:]]
from autobiz.cli.main import run
run()
"""


@dataclass
class Child:
    code: int
    stdout: str
    stderr: str


def _without_sandbox(program: str, *args: str, home: Path) -> Child:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOBIZ_")}
    env.update(AUTOBIZ_ENV="test", AUTOBIZ_HOME=str(home), NO_COLOR="1", COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-c", HIDE_SANDBOX + program, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Child(proc.returncode, proc.stdout, proc.stderr)


def production_modules() -> list[str]:
    modules = []
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules.append(".".join(parts))
    return modules


def test_the_hook_hides_the_sandbox(tmp_path: Path) -> None:
    """Not vacuous: in the child, the sandbox in the checkout cannot be imported."""
    child = _without_sandbox("import sandbox.server", home=tmp_path)  # the checkout has it
    assert child.code == 1 and "ModuleNotFoundError: No module named 'sandbox" in child.stderr


def test_every_production_module_imports_without_the_sandbox(tmp_path: Path) -> None:
    modules = production_modules()
    must = {"workers.worker", "ingress.app", "ingress.server", "autobiz.cli.main"}
    assert must <= set(modules) and len(modules) > 100
    child = _without_sandbox(IMPORT_ALL, json.dumps(modules), home=tmp_path)
    assert child.code == 0, child.stderr
    report = json.loads(child.stdout.splitlines()[-1])
    assert report == {"failed": {}, "leaked": []}, "\n".join(report["failed"].values())


WORKS = {
    "help": ("--help",),
    "worker": ("worker", "--help"),
    "ingress": ("ingress", "--help"),
    "db migrate": ("db", "migrate", "--help"),
    "codec-server": ("codec-server", "--help"),
    "replay": ("replay", "--help"),
    "sandbox --help": ("sandbox", "--help"),  # its help needs no sandbox
    "dev status": ("dev", "status", "--json"),  # reports the stack, sandbox included
    "version": ("version",),
}


@pytest.mark.parametrize("name", list(WORKS))
def test_production_commands_work_without_the_sandbox(tmp_path: Path, name: str) -> None:
    child = _without_sandbox(RUN_CLI, *WORKS[name], home=tmp_path)
    assert child.code == ExitCode.OK, child.stderr
    assert "Traceback" not in child.stdout + child.stderr


NEEDS_SANDBOX = {
    "sandbox": ("sandbox",),
    "dev up": ("dev", "up"),
    "demo": ("demo",),
}


@pytest.mark.parametrize("name", list(NEEDS_SANDBOX))
def test_commands_that_need_the_sandbox_say_so(tmp_path: Path, name: str) -> None:
    child = _without_sandbox(RUN_CLI, *NEEDS_SANDBOX[name], home=tmp_path)
    where = f"autobiz {name} -> {child.code}\n{child.stderr}"
    assert child.code == ExitCode.USAGE, where
    lines = child.stderr.strip().splitlines()
    assert len(lines) == 2, where  # one error line and its hint, nothing else
    assert re.fullmatch(r"error\[SANDBOX_NOT_INSTALLED\]: \S.*", lines[0]), where
    assert lines[1] == (
        "hint: the sandbox is dev tooling: install from a source checkout (pip install -e .)"
    )
    assert "Traceback" not in child.stdout + child.stderr
    assert not (tmp_path / "run").exists()  # refused before anything started


# -- the image --------------------------------------------------------------------------


@dataclass
class Stage:
    name: str | None
    base: str
    copies: list[tuple[str | None, list[str]]]  # (--from stage or None, sources)


def dockerfile_stages(text: str) -> list[Stage]:
    """The stages of a Dockerfile and what each COPY/ADD brings in (continuations joined)."""
    stages: list[Stage] = []
    for line in text.replace("\\\n", " ").splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        instruction = words[0].upper()
        if instruction == "FROM":
            named = len(words) >= 4 and words[2].upper() == "AS"
            stages.append(Stage(words[3] if named else None, words[1], []))
        elif instruction in ("COPY", "ADD"):
            flags = [w for w in words[1:] if w.startswith("--")]
            paths = [w for w in words[1:] if not w.startswith("--")]
            source = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            stages[-1].copies.append((source, paths[:-1]))
    return stages


def stages_behind(stages: list[Stage], final: Stage) -> list[Stage]:
    """``final`` and every stage it is built on or copies from."""
    by_name = {s.name: s for s in stages if s.name}
    seen: list[Stage] = []
    todo = [final]
    while todo:
        stage = todo.pop()
        if stage in seen:
            continue
        seen.append(stage)
        todo += [by_name[n] for n in (stage.base, *(f for f, _ in stage.copies)) if n in by_name]
    return seen


def default_image_sources(dockerfile: str) -> list[str]:
    """What the default target (the last stage) takes from the build context, itself or
    through the stages behind it."""
    stages = dockerfile_stages(dockerfile)
    behind = stages_behind(stages, stages[-1])
    return [
        src for stage in behind for origin, srcs in stage.copies if origin is None for src in srcs
    ]


def test_the_default_image_copies_no_sandbox() -> None:
    local = default_image_sources(DOCKERFILE.read_text())
    assert "autobiz" in local and "workers" in local  # the parse sees the COPY lines
    assert not [s for s in local if "sandbox" in s], local
    assert not [s for s in local if s.rstrip("/") in (".", "*")], "the whole tree: sandbox too"


def test_the_dockerfile_parse_sees_a_sandbox_copy() -> None:
    text = DOCKERFILE.read_text().replace(
        "COPY ingress ./ingress", "COPY ingress ./ingress\nCOPY sandbox ./sandbox"
    )
    assert "sandbox" in default_image_sources(text)


def test_the_build_without_sandbox_ships_no_sandbox(tmp_path: Path) -> None:
    """What the image's ``pip wheel .`` packs: the same package discovery (pyproject)
    over a tree holding only what the Dockerfile copies. ``build_py`` is the step that
    lays out a wheel's modules; it runs offline, unlike an isolated wheel build."""
    tree = tmp_path / "src"
    tree.mkdir()
    for source in default_image_sources(DOCKERFILE.read_text()):
        if (ROOT / source).is_dir():
            shutil.copytree(
                ROOT / source, tree / source, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / source, tree / source)
    out = tmp_path / "lib"
    proc = subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "build_py", "-d", out],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    shipped = {p.name for p in out.iterdir()}
    assert {"autobiz", "kernel", "workflows", "workers", "ingress"} <= shipped
    assert "sandbox" not in shipped
