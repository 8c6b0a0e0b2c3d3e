"""Lookup of tool contracts by name and version."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from kernel.contracts import ToolContract
from kernel.errors import ToolUnknownError

AnyContract = ToolContract[Any, Any]


class ToolRegistry:
    def __init__(self, contracts: Iterable[AnyContract] = ()) -> None:
        self._by_ref: dict[tuple[str, str], AnyContract] = {}
        for contract in contracts:
            self.register(contract)

    def register(self, contract: AnyContract) -> None:
        key = (contract.name, contract.version)
        if key in self._by_ref:
            raise ValueError(f"tool {contract.ref} registered twice")
        self._by_ref[key] = contract

    def get(self, name: str, version: str) -> AnyContract:
        try:
            return self._by_ref[(name, version)]
        except KeyError:
            raise ToolUnknownError(name, version) from None

    def find(self, name: str, version: str) -> AnyContract | None:
        return self._by_ref.get((name, version))

    def latest(self, name: str) -> AnyContract:
        versions = [c for (n, _), c in self._by_ref.items() if n == name]
        if not versions:
            raise ToolUnknownError(name, "*")
        return max(versions, key=lambda c: (len(c.version), c.version))

    def __contains__(self, ref: object) -> bool:
        if not isinstance(ref, str) or "@" not in ref:
            return False
        name, _, version = ref.partition("@")
        return (name, version) in self._by_ref

    def __iter__(self) -> Iterator[AnyContract]:
        return iter(sorted(self._by_ref.values(), key=lambda c: (c.name, c.version)))

    def __len__(self) -> int:
        return len(self._by_ref)
