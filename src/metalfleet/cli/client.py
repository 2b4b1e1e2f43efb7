"""The CLI's HTTP client: finds the server and the token, turns problems into errors."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"


class ApiError(Exception):
    def __init__(self, status: int, title: str, detail: str, body: dict[str, Any]) -> None:
        super().__init__(f"{title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body


@dataclass
class Connection:
    url: str
    token: str | None


def resolve_connection(url: str | None, token: str | None, data_dir: Path | None) -> Connection:
    """--url/--token win, then METALFLEET_URL/METALFLEET_TOKEN, then <data-dir>/admin.token."""
    url = url or os.environ.get("METALFLEET_URL") or DEFAULT_URL
    token = token or os.environ.get("METALFLEET_TOKEN")
    if not token:
        directory = data_dir or Path(os.environ.get("METALFLEET_DATA_DIR", "./metalfleet-data"))
        token_file = directory / "admin.token"
        if token_file.exists():
            token = token_file.read_text().strip()
    return Connection(url=url.rstrip("/"), token=token)


class Client:
    def __init__(self, connection: Connection, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {connection.token}"} if connection.token else {}
        self.connection = connection
        self.http = httpx.Client(base_url=connection.url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ApiError(
                0, "Cannot reach metalfleet",
                f"nothing answers at {self.connection.url} ({exc}); start it with "
                "`metalfleet up` or pass --url / set METALFLEET_URL", {},
            ) from exc
        except httpx.HTTPError as exc:
            raise ApiError(0, "Request failed", f"{exc}", {}) from exc
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = {"title": response.reason_phrase, "detail": response.text[:500]}
            if response.status_code == 401 and not self.connection.token:
                body["detail"] = (
                    "no token found: pass --token, set METALFLEET_TOKEN, or run from the "
                    "directory holding metalfleet-data/ (or pass --data-dir)"
                )
            raise ApiError(response.status_code, str(body.get("title", "Error")),
                           str(body.get("detail", "")), body)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=clean)

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def list_all(self, path: str, **params: Any) -> list[Any]:
        """Follow the cursor through every page."""
        items: list[Any] = []
        cursor = None
        while True:
            page = self.get(path, cursor=cursor, **params)
            items += page["items"]
            cursor = page.get("next")
            if not cursor:
                return items
