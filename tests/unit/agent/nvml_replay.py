"""A pynvml stand-in that answers what a real GPU answered (bench/gpu_device.py recorded it).

Each call is looked up by function name and arguments (handles as ``{"__handle__": i}``);
structures come back as attribute namespaces, ``bytes`` as bytes, recorded NVML errors are
raised again with their code. A call the recording lacks raises :class:`Unrecorded` and is
listed in ``missed``: a test asserts that list is empty, so code that starts asking NVML
something new is noticed instead of silently losing a field.
"""

from __future__ import annotations

import copy
import json
import types
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "nvml"


class NVMLError(Exception):
    def __init__(self, value: int | None, text: str) -> None:
        super().__init__(text)
        self.value = value


class Unrecorded(Exception):
    pass


def _key(fn: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    return json.dumps([fn, args, kwargs], sort_keys=True)


def _rebuild(value: Any) -> Any:
    if isinstance(value, list):
        return [_rebuild(v) for v in value]
    if isinstance(value, dict):
        if "__bytes__" in value:
            return str(value["__bytes__"]).encode()
        if "__struct__" in value:
            return types.SimpleNamespace(**{k: _rebuild(v)
                                            for k, v in value["__struct__"].items()})
        if "__handle__" in value:
            return _Handle(int(value["__handle__"]))
    return value


class _Handle:
    def __init__(self, index: int) -> None:
        self.index = index


class ReplayNvml:
    """Module-like: ``replay.nvmlDeviceGetName(handle)`` etc., from a recording."""

    def __init__(self, recording: dict[str, Any]) -> None:
        self._answers = {_key(c["fn"], c["args"], c["kwargs"]): c for c in recording["calls"]}
        self._functions = {c["fn"] for c in recording["calls"]}
        self._constants = dict(recording["constants"])
        self.missed: list[str] = []
        self.NVMLError = NVMLError

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._constants:
            return self._constants[name]
        if name in {"nvmlInit", "nvmlShutdown"}:
            return lambda: None
        if name not in self._functions:
            raise AttributeError(f"the recording has no {name}")

        def call(*args: Any, **kwargs: Any) -> Any:
            plain = [{"__handle__": a.index} if isinstance(a, _Handle) else a for a in args]
            key = _key(name, plain, kwargs)
            entry = self._answers.get(key)
            if entry is None:
                self.missed.append(key)
                raise Unrecorded(key)
            if "error" in entry:
                raise NVMLError(entry["error"]["value"], entry["error"]["text"])
            return _rebuild(entry["result"])

        return call

    def patched(self, fn: str, result: Any) -> ReplayNvml:
        """A copy whose every recorded answer of ``fn`` is ``result`` (a fault to inject)."""
        twin = copy.copy(self)
        twin._answers = {k: ({**c, "result": result} if c["fn"] == fn else c)
                         for k, c in self._answers.items()}
        for entry in twin._answers.values():
            if entry["fn"] == fn:
                entry.pop("error", None)
        twin.missed = []
        return twin


def load_recording(name: str = "h200") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}_recording.json").read_text())
    return data


def nvidia_smi_xml(name: str = "h200") -> str:
    return (FIXTURES / f"{name}_nvidia-smi.xml").read_text()
