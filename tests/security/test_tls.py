"""metalfleet serving HTTPS itself (`up --tls-cert/--tls-key`): real TLS on a real socket.

The attacker is on the path between operators and the API: with TLS served by metalfleet,
the port speaks only TLS (a plain-HTTP request gets no API answer, so no token travels in
clear text by mistake), and clients verify the server's certificate.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from metalfleet.config import Settings
from metalfleet.core.errors import ValidationError
from metalfleet.db.base import utcnow
from metalfleet.runtime import AppContext
from metalfleet.server import check_tls
from metalfleet.web.auth import COOKIE


@dataclass
class Pki:
    cert: Path
    key: Path


def self_signed(folder: Path, name: str = "127.0.0.1") -> Pki:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = utcnow()
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(name))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(cert=folder / "cert.pem", key=folder / "key.pem")
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    pki.key.chmod(0o600)
    return pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return self_signed(tmp_path / "pki")


@pytest.fixture
def tls_server(request: pytest.FixtureRequest, context: AppContext, pki: Pki) -> str:
    """The API with HTTPS on 127.0.0.1 (as `up --tls-cert --tls-key` starts it)."""
    context.settings.tls_cert, context.settings.tls_key = pki.cert, pki.key
    check_tls(context.settings)
    return str(request.getfixturevalue("live_server"))


def test_https_is_served_and_plain_http_is_not(
        context: AppContext, tls_server: str, pki: Pki, admin_token: str) -> None:
    assert tls_server.startswith("https://")
    assert context.settings.resolved_public_url() == tls_server
    plain_url = tls_server.replace("https://", "http://")
    trust = ssl.create_default_context(cafile=str(pki.cert))
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(verify=trust, timeout=5) as https:
        r = https.get(f"{tls_server}/v1/nodes", headers=headers)
        assert r.status_code == 200 and r.json()["items"] == []
        login = https.post(f"{tls_server}/ui/login",
                           data={"token": admin_token},
                           headers={"Origin": f"{tls_server}"})
        assert login.status_code == 303
        assert "; secure" in login.headers["set-cookie"].lower() and COOKIE in login.cookies
    # The same request in clear text: no HTTP answer comes back on the TLS port.
    with httpx.Client(timeout=5) as plain, pytest.raises(httpx.TransportError):
        plain.get(f"{plain_url}/v1/nodes", headers=headers)
    # A client that does not trust the certificate refuses to talk (no silent downgrade).
    with httpx.Client(timeout=5) as strict, pytest.raises(httpx.ConnectError):
        strict.get(f"{tls_server}/healthz")


def test_half_a_tls_set_up_is_refused(tmp_path: Path, pki: Pki) -> None:
    with pytest.raises(ValidationError, match="go together"):
        check_tls(Settings(data_dir=tmp_path, tls_cert=pki.cert))
    with pytest.raises(ValidationError, match="does not exist"):
        check_tls(Settings(data_dir=tmp_path, tls_cert=pki.cert, tls_key=tmp_path / "nope"))
    assert Settings(data_dir=tmp_path).resolved_public_url().startswith("http://")
    # Served TLS implies Secure cookies even without METALFLEET_BEHIND_TLS.
    assert Settings(data_dir=tmp_path, tls_cert=pki.cert, tls_key=pki.key).secure_cookies


def test_behind_tls_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("METALFLEET_BEHIND_TLS", "1")
    assert Settings(data_dir=tmp_path).secure_cookies
    monkeypatch.setenv("METALFLEET_BEHIND_TLS", "0")
    assert not Settings(data_dir=tmp_path).secure_cookies



def test_the_database_url_carries_tls_verification(tmp_path: Path, pki: Pki) -> None:
    """`sslmode=verify-full` in the URL reaches libpq: a server that cannot prove itself with
    the named CA (here: one that is not its issuer, or no TLS at all) is refused, never used
    in clear text."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from metalfleet.db.session import Database
    from tests.conftest import PG_ADMIN_URL

    separator = "&" if "?" in PG_ADMIN_URL else "?"
    db = Database(f"{PG_ADMIN_URL}{separator}sslmode=verify-full&sslrootcert={pki.cert}")
    try:
        with pytest.raises(OperationalError), db.engine.connect() as conn:
            conn.execute(text("select 1"))
    finally:
        db.dispose()
