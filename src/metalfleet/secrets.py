"""Encryption of stored credentials (BMC passwords) with Fernet; the key lives outside the DB.

The key comes from METALFLEET_SECRET_KEY, else from the file METALFLEET_SECRET_KEY_FILE,
else from ``<data-dir>/secret.key`` (created 0600 on first start). Older keys listed in
METALFLEET_OLD_SECRET_KEYS (comma-separated) still decrypt, which is how a key is rotated:
see docs/operations.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from metalfleet.core.errors import MetalfleetError
from metalfleet.private_files import PRIVATE_DIR, PRIVATE_FILE, restrict


class SecretKeyError(MetalfleetError):
    status = 500
    title = "Credential key error"


class CredentialCipher:
    def __init__(self, key: bytes, old_keys: list[bytes] | None = None) -> None:
        self._fernet = MultiFernet([Fernet(key), *(Fernet(k) for k in old_keys or [])])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError(
                "a stored credential cannot be decrypted with the configured key; "
                "set METALFLEET_OLD_SECRET_KEYS to the previous key or re-enter the credential"
            ) from exc

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` with the current key."""
        return self._fernet.rotate(token.encode()).decode()


def load_cipher(data_dir: Path) -> CredentialCipher:
    env_key = os.environ.get("METALFLEET_SECRET_KEY")
    key_file = Path(os.environ.get("METALFLEET_SECRET_KEY_FILE", data_dir / "secret.key"))
    if env_key:
        key = env_key.encode()
    elif key_file.exists():
        restrict(key_file, PRIVATE_FILE)  # a key others can read decrypts every BMC password
        key = key_file.read_bytes().strip()
    else:
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        key = Fernet.generate_key()
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
    old = [k.strip().encode() for k in os.environ.get("METALFLEET_OLD_SECRET_KEYS", "").split(",")
           if k.strip()]
    try:
        return CredentialCipher(key, old)
    except ValueError as exc:
        raise SecretKeyError(
            "the credential key is not a valid Fernet key (32 url-safe base64 bytes); "
            "generate one with `python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'`"
        ) from exc
