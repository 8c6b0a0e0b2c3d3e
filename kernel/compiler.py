"""The BusinessConfig compiler (P1-R18..R20): YAML text in, diagnostics out.

Stable codes (docs/kernel.md):

* ``CFG-YAML``   — the file is not valid YAML;
* ``CFG-SCHEMA`` — a field is unknown, missing or of the wrong type;
* ``CFG-HITL``   — a HITL condition does not parse (column given) or is incomplete;
* ``CC-01``      — tool closure: unknown workflow type or tool, a tool the workflow
  type calls is not listed, a HITL rule or allowlist entry names an unlisted tool;
* ``CC-02``      — bounds missing (all of max_steps, max_tool_calls, max_wall_time,
  max_tokens, max_cost_usd) for an enabled workflow;
* ``CC-03``      — scopes missing, or not covering what the workflow's tools require;
* ``CC-04``      — a FINANCIAL tool without a HITL rule, with NEVER/AUTO_APPROVE, or
  whose approver roles nobody holds.

Pure: reads no files (the CLI and the worker pass the text in).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from kernel.config import BusinessConfig, WorkflowConfig
from kernel.contracts import HitlMode, SideEffect, split_ref
from kernel.hitl_lang import ConditionSyntaxError, parse, paths
from kernel.registry import ToolRegistry
from kernel.tools import REGISTRY, WORKFLOW_TOOLS

PathKey = tuple[str | int, ...]
CONDITION_ROOTS = {"input", "tool", "tenant", "workflow"}


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    line: int | None = None
    path: PathKey = ()

    def format(self, filename: str) -> str:
        return f"{filename}:{self.line or 1}: {self.code} {self.message}"


@dataclass
class CompileResult:
    config: BusinessConfig | None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.config is not None and not self.diagnostics


def line_map(text: str) -> dict[PathKey, int]:
    """Path of every mapping key / sequence item → its 1-based line."""
    lines: dict[PathKey, int] = {}
    root = yaml.compose(text, Loader=yaml.SafeLoader)

    def walk(node: yaml.Node, path: PathKey) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*path, str(key_node.value))
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                key = (*path, index)
                lines[key] = item.start_mark.line + 1
                walk(item, key)

    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, ())
    return lines


class _Compiler:
    def __init__(
        self,
        lines: dict[PathKey, int],
        registry: ToolRegistry,
        workflow_tools: Mapping[str, frozenset[str]],
    ) -> None:
        self.lines = lines
        self.registry = registry
        self.workflow_tools = workflow_tools
        self.diagnostics: list[Diagnostic] = []

    def line(self, path: PathKey) -> int:
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)

    def error(self, code: str, path: PathKey, message: str) -> None:
        self.diagnostics.append(Diagnostic(code, message, self.line(path), path))

    def run(self, config: BusinessConfig) -> None:
        roles = config.roles()
        for name, wf in config.workflows.items():
            base: PathKey = ("workflows", name)
            self.check_hitl_syntax(base, wf)
            if not wf.enabled:
                continue
            self.cc01_closure(base, name, wf)
            self.cc02_bounds(base, wf)
            self.cc03_scopes(base, wf)
            self.cc04_financial(base, wf, roles)

    def check_hitl_syntax(self, base: PathKey, wf: WorkflowConfig) -> None:
        for i, rule in enumerate(wf.hitl):
            path = (*base, "hitl", i)
            if rule.mode is HitlMode.WHEN and not rule.when:
                self.error("CFG-HITL", path, f"rule for {rule.tool}: mode WHEN needs 'when'")
            if rule.mode is not HitlMode.WHEN and rule.when:
                self.error(
                    "CFG-HITL",
                    (*path, "when"),
                    f"rule for {rule.tool}: 'when' is only read with mode WHEN",
                )
            if rule.when:
                try:
                    node = parse(rule.when)
                except ConditionSyntaxError as exc:
                    self.error(
                        "CFG-HITL",
                        (*path, "when"),
                        f"condition {rule.when!r}: column {exc.column}: {exc.reason}",
                    )
                    continue
                for p in sorted(paths(node)):
                    if p[0] not in CONDITION_ROOTS:
                        self.error(
                            "CFG-HITL",
                            (*path, "when"),
                            f"condition reads {'.'.join(p)}; fields start with one of "
                            + ", ".join(sorted(CONDITION_ROOTS)),
                        )

    def cc01_closure(self, base: PathKey, name: str, wf: WorkflowConfig) -> None:
        required = self.workflow_tools.get(name)
        if required is None:
            known = ", ".join(sorted(self.workflow_tools))
            self.error("CC-01", base, f"unknown workflow type {name!r} (known: {known})")
            return
        for i, ref in enumerate(wf.tools):
            try:
                tool, version = split_ref(ref)
            except ValueError as exc:
                self.error("CC-01", (*base, "tools", i), str(exc))
                continue
            if self.registry.find(tool, version) is None:
                self.error("CC-01", (*base, "tools", i), f"{name}: unknown tool {ref}")
        listed = set(wf.tools)
        for ref in sorted(required - listed):
            self.error("CC-01", (*base, "tools"), f"{name} calls {ref}, which is not listed")
        for i, rule in enumerate(wf.hitl):
            if rule.tool not in listed:
                self.error(
                    "CC-01",
                    (*base, "hitl", i, "tool"),
                    f"{name}: HITL rule for {rule.tool}, which the workflow does not list",
                )
        for i, entry in enumerate(wf.loop.retry_allowlist):
            if entry not in listed and not any(r.startswith(entry + "@") for r in listed):
                self.error(
                    "CC-01",
                    (*base, "loop", "retry_allowlist", i),
                    f"{name}: retry allowlist names {entry}, which the workflow does not list",
                )

    def cc02_bounds(self, base: PathKey, wf: WorkflowConfig) -> None:
        if wf.bounds is None:
            self.error("CC-02", base, f"{base[-1]}: bounds missing")
            return
        missing = wf.bounds.missing()
        if missing:
            self.error(
                "CC-02", (*base, "bounds"), f"{base[-1]}: bounds missing {', '.join(missing)}"
            )

    def cc03_scopes(self, base: PathKey, wf: WorkflowConfig) -> None:
        if not wf.scopes:
            self.error("CC-03", base, f"{base[-1]}: scopes missing (deny by default)")
            return
        granted = set(wf.scopes)
        for ref in wf.tools:
            contract = self._contract(ref)
            if contract is None:
                continue
            missing = sorted(contract.scopes - granted)
            if missing:
                self.error(
                    "CC-03",
                    (*base, "scopes"),
                    f"{base[-1]}: {ref} needs scope(s) {', '.join(missing)}",
                )

    def cc04_financial(self, base: PathKey, wf: WorkflowConfig, roles: set[str]) -> None:
        rules = {rule.tool: (i, rule) for i, rule in enumerate(wf.hitl)}
        for ref in wf.tools:
            contract = self._contract(ref)
            if contract is None or contract.side_effect is not SideEffect.FINANCIAL:
                continue
            if ref not in rules:
                self.error("CC-04", (*base, "hitl"), f"FINANCIAL tool {ref} has no HITL rule")
                continue
            i, rule = rules[ref]
            path = (*base, "hitl", i)
            if rule.mode in (HitlMode.NEVER, HitlMode.AUTO_APPROVE):
                self.error(
                    "CC-04",
                    (*path, "mode"),
                    f"FINANCIAL tool {ref} may not use {rule.mode.value}",
                )
            if not rule.approver_roles:
                self.error("CC-04", path, f"FINANCIAL tool {ref}: HITL rule names no approver role")
            for role in rule.approver_roles:
                if role not in roles:
                    self.error(
                        "CC-04",
                        (*path, "approver_roles"),
                        f"FINANCIAL tool {ref}: no approver holds role {role!r}",
                    )
            if rule.on_timeout != "FAIL":
                self.error(
                    "CC-04",
                    (*path, "on_timeout"),
                    f"FINANCIAL tool {ref}: an approval timeout must FAIL (INV-07)",
                )

    def _contract(self, ref: str) -> Any:
        try:
            return self.registry.find(*split_ref(ref))
        except ValueError:
            return None


def compile_text(
    text: str,
    *,
    registry: ToolRegistry = REGISTRY,
    workflow_tools: Mapping[str, frozenset[str]] = WORKFLOW_TOOLS,
) -> CompileResult:
    """Compile one config; diagnostics are sorted by line and stable."""
    try:
        lines = line_map(text)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        return CompileResult(None, [Diagnostic("CFG-YAML", str(exc.problem or exc), line)])
    except yaml.YAMLError as exc:
        return CompileResult(None, [Diagnostic("CFG-YAML", str(exc), 1)])
    compiler = _Compiler(lines, registry, workflow_tools)
    if not isinstance(data, dict):
        compiler.error("CFG-SCHEMA", (), "the config must be a mapping")
        return CompileResult(None, compiler.diagnostics)
    try:
        config = BusinessConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "<root>"
            compiler.error("CFG-SCHEMA", loc, f"{where}: {err['msg']}")
        return CompileResult(None, _sorted(compiler.diagnostics))
    compiler.run(config)
    return CompileResult(config, _sorted(compiler.diagnostics))


def _sorted(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=lambda d: (d.line or 0, d.code, d.message))
