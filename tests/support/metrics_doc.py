"""The metric tables of ``docs/metrics.md``, as the tests read them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
ENDPOINTS = {"## Worker endpoint": "worker", "## Ingress endpoint": "ingress"}
_ROW = re.compile(r"^\| `(autobiz_[a-z0-9_]+)` \| (counter|gauge|histogram) \|([^|]*)\|")


@dataclass(frozen=True)
class DocMetric:
    name: str
    kind: str
    labels: tuple[str, ...]
    endpoint: str


def documented(path: Path = DOC) -> list[DocMetric]:
    """Every row of the worker and ingress tables, in order."""
    found: list[DocMetric] = []
    endpoint: str | None = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            endpoint = ENDPOINTS.get(line.strip())
            continue
        match = _ROW.match(line)
        if match is None:
            continue
        assert endpoint is not None, f"{line[:60]}: a metric row outside the endpoint tables"
        name, kind, labels = match.groups()
        names = tuple(part.strip() for part in labels.split(",") if part.strip())
        found.append(DocMetric(name, kind, names, endpoint))
    return found
