"""A stand-in Kubernetes API server for ``kubectl apply --dry-run=client``: discovery for
the kinds the manifests use, and 404 for every object (so each apply is a create). No
cluster is needed to see which objects a documented ``kubectl apply`` command sends."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# group/version -> kinds served there
Kinds = dict[str, set[str]]


def plural(kind: str) -> str:
    lower = kind.lower()
    return lower + ("es" if lower.endswith("s") else "s")


def _discovery(kinds: Kinds) -> dict[str, Any]:
    docs: dict[str, Any] = {
        "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
        "/api": {"kind": "APIVersions", "versions": ["v1"]},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    }
    for group_version, names in kinds.items():
        resources = [
            {
                "name": plural(kind),
                "singularName": kind.lower(),
                "namespaced": kind != "Namespace",
                "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
            for kind in sorted(names)
        ]
        listing = {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }
        if "/" in group_version:
            group, version = group_version.split("/")
            entry = {"groupVersion": group_version, "version": version}
            docs["/apis"]["groups"].append(
                {"name": group, "versions": [entry], "preferredVersion": entry}
            )
            docs[f"/apis/{group_version}"] = listing
        else:
            docs[f"/api/{group_version}"] = listing
    return docs


def kinds_of(docs: Iterable[dict[str, Any]]) -> Kinds:
    kinds: Kinds = {}
    for doc in docs:
        kinds.setdefault(doc["apiVersion"], set()).add(doc["kind"])
    kinds.setdefault("v1", set()).add("Namespace")
    return kinds


@contextmanager
def fake_api(kinds: Kinds) -> Iterator[str]:
    """Serve on a loopback port; yields the ``--server`` URL."""
    discovery = _discovery(kinds)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in discovery:
                self._send(200, discovery[path])
            else:
                status = {"kind": "Status", "apiVersion": "v1", "status": "Failure"}
                self._send(404, {**status, "reason": "NotFound", "code": 404})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
