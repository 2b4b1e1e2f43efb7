"""The lab BMC emulator's Redfish HTTP service (FastAPI), enough for sushy and Ironic-style drivers.

Authentication: HTTP Basic or a Redfish session (``X-Auth-Token``) on everything except the
service root and session creation. Each system has its own user name and password; the
collections list the systems the caller's credentials open.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from metalfleet.lab import redfish_payloads as rf
from metalfleet.lab.bmc_model import (
    BOOT_ENABLED,
    BOOT_MODES,
    BOOT_TARGETS,
    RESET_TYPES,
    LabBmcEmulator,
    LabSystem,
    credentials_match,
)
from metalfleet.lab.redfish_sessions import SessionStore

_BOOT_FIELDS = {
    "BootSourceOverrideTarget": BOOT_TARGETS,
    "BootSourceOverrideEnabled": BOOT_ENABLED,
    "BootSourceOverrideMode": BOOT_MODES,
}


class RedfishError(Exception):
    def __init__(self, status: int, message_id: str, message: str, resolution: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message_id = message_id
        self.message = message
        self.resolution = resolution


def _unauthorized() -> RedfishError:
    return RedfishError(401, "NoValidSession",
                        "There is no valid session established with the implementation.",
                        "Establish a session or send valid HTTP Basic credentials.")


def _not_found(path: str) -> RedfishError:
    return RedfishError(404, "ResourceNotFound", f"The requested resource {path} was not found.",
                        "Provide a valid resource identifier and resubmit the request.")


def _bad_request(message_id: str, message: str) -> RedfishError:
    return RedfishError(400, message_id, message,
                        "Correct the request body and resubmit the request.")


def redfish_json(payload: dict[str, Any], status: int = 200,
                 headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(payload, status_code=status,
                        headers={"OData-Version": "4.0", **(headers or {})})


def _no_content() -> Response:
    return Response(status_code=204, headers={"OData-Version": "4.0"})


def _credentials(request: Request, sessions: SessionStore) -> tuple[str, str]:
    token = request.headers.get("x-auth-token")
    if token:
        entry = sessions.by_token(token)
        if entry is None:
            raise _unauthorized()
        return entry.username, entry.password
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise _unauthorized()
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized() from None
    username, separator, password = decoded.partition(":")
    if not separator:
        raise _unauthorized()
    return username, password


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _bad_request("MalformedJSON", "The request body submitted was malformed JSON "
                                            "and could not be parsed.") from None
    if not isinstance(body, dict):
        raise _bad_request("MalformedJSON", "The request body must be a JSON object.")
    return body


def build_app(emulator: LabBmcEmulator) -> FastAPI:
    """The Redfish service for every system of ``emulator``."""
    app = FastAPI(title="metalfleet lab BMC", docs_url=None, redoc_url=None, openapi_url=None)
    sessions = SessionStore()
    app.state.emulator = emulator
    app.state.sessions = sessions

    @app.exception_handler(RedfishError)
    async def _redfish_error(request: Request, exc: RedfishError) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="metalfleet-lab-bmc"'} \
            if exc.status == 401 else None
        return redfish_json(rf.error_body(exc.message_id, exc.message, exc.resolution),
                            exc.status, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error = _not_found(request.url.path)
        elif exc.status_code == 405:
            error = RedfishError(405, "OperationNotAllowed",
                                 f"{request.method} is not allowed on {request.url.path}.")
        else:
            error = RedfishError(exc.status_code, "GeneralError", str(exc.detail))
        return await _redfish_error(request, error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return await _redfish_error(request, _bad_request("MalformedJSON", "Invalid request."))

    def caller_systems(request: Request) -> list[str]:
        username, password = _credentials(request, sessions)
        allowed = emulator.authorized(username, password)
        if not allowed:
            raise _unauthorized()
        return allowed

    def authorized_system(request: Request, system_id: str) -> LabSystem:
        username, password = _credentials(request, sessions)
        system = emulator.get(system_id)
        if system is None:
            if emulator.authorized(username, password):
                raise _not_found(request.url.path)
            raise _unauthorized()
        if not credentials_match(system, username, password):
            raise _unauthorized()
        return system

    @app.get("/redfish")
    async def versions() -> JSONResponse:
        return redfish_json({"v1": "/redfish/v1/"})

    @app.get("/redfish/v1")
    @app.get("/redfish/v1/")
    async def service_root() -> JSONResponse:
        return redfish_json(rf.service_root(emulator.service_uuid))

    @app.get("/redfish/v1/Systems")
    async def systems(request: Request) -> JSONResponse:
        members = [f"{rf.SYSTEMS}/{system_id}" for system_id in caller_systems(request)]
        return redfish_json(rf.collection(rf.SYSTEMS, "ComputerSystemCollection",
                                          "Computer System Collection", members))

    @app.get("/redfish/v1/Systems/{system_id}")
    async def system(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.computer_system(authorized_system(request, system_id)))

    @app.patch("/redfish/v1/Systems/{system_id}")
    async def patch_system(request: Request, system_id: str) -> Response:
        authorized_system(request, system_id)
        body = await _json_body(request)
        unknown = sorted(set(body) - {"Boot"})
        if unknown:
            raise _bad_request("PropertyNotWritable",
                               f"The property {unknown[0]} is a read only property and "
                               "cannot be assigned a value.")
        boot = body.get("Boot")
        if not isinstance(boot, dict):
            raise _bad_request("PropertyValueTypeError", "The value of Boot must be an object.")
        for name, value in boot.items():
            allowed = _BOOT_FIELDS.get(name)
            if allowed is None:
                raise _bad_request("PropertyUnknown",
                                   f"The property {name} is not in the list of valid properties "
                                   "for the resource.")
            if value not in allowed:
                raise _bad_request("PropertyValueNotInList",
                                   f"The value {value!r} for the property {name} is not in the "
                                   f"list of acceptable values: {', '.join(allowed)}.")
        emulator.set_boot_override(system_id, target=boot.get("BootSourceOverrideTarget"),
                                   enabled=boot.get("BootSourceOverrideEnabled"),
                                   mode=boot.get("BootSourceOverrideMode"))
        return _no_content()

    @app.post("/redfish/v1/Systems/{system_id}/Actions/ComputerSystem.Reset")
    async def reset(request: Request, system_id: str) -> Response:
        authorized_system(request, system_id)
        body = await _json_body(request)
        reset_type = body.get("ResetType")
        if reset_type is None:
            raise _bad_request("ActionParameterMissing", "The action ComputerSystem.Reset "
                               "requires the parameter ResetType to be present.")
        if reset_type not in RESET_TYPES:
            raise _bad_request("ActionParameterNotSupported",
                               f"The parameter ResetType={reset_type!r} is not supported "
                               f"on this system; allowed: {', '.join(RESET_TYPES)}.")
        emulator.reset(system_id, reset_type)
        return _no_content()

    @app.get("/redfish/v1/Systems/{system_id}/Processors")
    async def processors(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.processors(authorized_system(request, system_id)))

    @app.get("/redfish/v1/Systems/{system_id}/Processors/{member}")
    async def processor(request: Request, system_id: str, member: str) -> JSONResponse:
        payload = rf.processor(authorized_system(request, system_id), member)
        return _member_or_404(payload, request)

    @app.get("/redfish/v1/Systems/{system_id}/EthernetInterfaces")
    async def nics(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.ethernet_interfaces(authorized_system(request, system_id)))

    @app.get("/redfish/v1/Systems/{system_id}/EthernetInterfaces/{member}")
    async def nic(request: Request, system_id: str, member: str) -> JSONResponse:
        payload = rf.ethernet_interface(authorized_system(request, system_id), member)
        return _member_or_404(payload, request)

    @app.get("/redfish/v1/Systems/{system_id}/Memory")
    async def memory_modules(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.memory_collection(authorized_system(request, system_id)))

    @app.get("/redfish/v1/Systems/{system_id}/Memory/{member}")
    async def memory_module(request: Request, system_id: str, member: str) -> JSONResponse:
        payload = rf.memory(authorized_system(request, system_id), member)
        return _member_or_404(payload, request)

    @app.get("/redfish/v1/Managers")
    async def managers(request: Request) -> JSONResponse:
        members = [f"{rf.MANAGERS}/{system_id}" for system_id in caller_systems(request)]
        return redfish_json(rf.collection(rf.MANAGERS, "ManagerCollection",
                                          "Manager Collection", members))

    @app.get("/redfish/v1/Managers/{system_id}")
    async def manager(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.manager(authorized_system(request, system_id)))

    @app.get("/redfish/v1/Chassis")
    async def chassis_collection(request: Request) -> JSONResponse:
        members = [f"{rf.CHASSIS}/{system_id}" for system_id in caller_systems(request)]
        return redfish_json(rf.collection(rf.CHASSIS, "ChassisCollection",
                                          "Chassis Collection", members))

    @app.get("/redfish/v1/Chassis/{system_id}")
    async def chassis(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.chassis(authorized_system(request, system_id)))

    @app.get("/redfish/v1/Chassis/{system_id}/Thermal")
    async def chassis_thermal(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.thermal(authorized_system(request, system_id)))

    @app.get("/redfish/v1/Managers/{system_id}/LogServices")
    async def log_services(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.log_services(authorized_system(request, system_id)))

    @app.get("/redfish/v1/Managers/{system_id}/LogServices/SEL")
    async def log_service(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.log_service(authorized_system(request, system_id)))

    @app.get("/redfish/v1/Managers/{system_id}/LogServices/SEL/Entries")
    async def log_entries(request: Request, system_id: str) -> JSONResponse:
        return redfish_json(rf.log_entries(authorized_system(request, system_id)))

    @app.get("/redfish/v1/SessionService")
    async def session_service(request: Request) -> JSONResponse:
        caller_systems(request)
        return redfish_json(rf.session_service())

    @app.get("/redfish/v1/SessionService/Sessions")
    async def session_collection(request: Request) -> JSONResponse:
        username, password = _credentials(request, sessions)
        caller_systems(request)
        members = [f"{rf.SESSIONS}/{s.id}" for s in sessions.of_user(username, password)]
        return redfish_json(rf.collection(rf.SESSIONS, "SessionCollection",
                                          "Session Collection", members))

    @app.post("/redfish/v1/SessionService/Sessions")
    async def create_session(request: Request) -> JSONResponse:
        body = await _json_body(request)
        username, password = body.get("UserName"), body.get("Password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise _bad_request("ActionParameterMissing",
                               "UserName and Password are required to create a session.")
        if not emulator.authorized(username, password):
            raise _unauthorized()
        entry = sessions.create(username, password)
        location = f"{rf.SESSIONS}/{entry.id}"
        return redfish_json(rf.session(entry.id, username), 201,
                            {"X-Auth-Token": entry.token, "Location": location})

    @app.get("/redfish/v1/SessionService/Sessions/{session_id}")
    async def get_session(request: Request, session_id: str) -> JSONResponse:
        username, password = _credentials(request, sessions)
        entry = sessions.by_id(session_id)
        if entry is None or (entry.username, entry.password) != (username, password):
            raise _not_found(request.url.path)
        return redfish_json(rf.session(entry.id, entry.username))

    @app.delete("/redfish/v1/SessionService/Sessions/{session_id}")
    async def delete_session(request: Request, session_id: str) -> Response:
        username, password = _credentials(request, sessions)
        entry = sessions.by_id(session_id)
        if entry is None or (entry.username, entry.password) != (username, password):
            raise _not_found(request.url.path)
        sessions.delete(session_id)
        return _no_content()

    return app


def _member_or_404(payload: dict[str, Any] | None, request: Request) -> JSONResponse:
    if payload is None:
        raise _not_found(request.url.path)
    return redfish_json(payload)
