from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from metalfleet.secrets import CredentialCipher, SecretKeyError, load_cipher


def test_key_file_is_created_private_and_reused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METALFLEET_SECRET_KEY", raising=False)
    cipher = load_cipher(tmp_path)
    key_file = tmp_path / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    token = cipher.encrypt("hunter2")
    assert "hunter2" not in token
    assert load_cipher(tmp_path).decrypt(token) == "hunter2"


def test_rotation_with_old_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    stored = CredentialCipher(old).encrypt("pw")
    monkeypatch.setenv("METALFLEET_SECRET_KEY", new.decode())
    monkeypatch.delenv("METALFLEET_OLD_SECRET_KEYS", raising=False)
    with pytest.raises(SecretKeyError, match="METALFLEET_OLD_SECRET_KEYS"):
        load_cipher(tmp_path).decrypt(stored)
    monkeypatch.setenv("METALFLEET_OLD_SECRET_KEYS", old.decode())
    cipher = load_cipher(tmp_path)
    assert cipher.decrypt(stored) == "pw"
    rotated = cipher.rotate(stored)
    assert CredentialCipher(new).decrypt(rotated) == "pw"


def test_bad_key_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALFLEET_SECRET_KEY", "not-a-key")
    with pytest.raises(SecretKeyError, match="not a valid Fernet key"):
        load_cipher(tmp_path)
