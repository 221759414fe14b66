"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

A note is UTF-8 text ending in a newline, a blank line, then signature lines
`— <key name> base64(key ID || signature)`. Keys are named; the key ID is the first four bytes of
SHA-256(name || 0x0A || 0x01 || public key), and a verifier key is written
`<name>+<key ID, 8 hex digits>+<base64(0x01 || public key)>`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from teeplane.baseline.errors import Code, LogInputError, LogVerificationError
from teeplane.baseline.tlog import b64

ED25519 = 0x01
MAX_SIGNATURES = 100
MAX_NOTE_SIZE = 1 << 20
_SIG_PREFIX = "— "  # em dash, space
_ED25519_SIG_SIZE = 64


def is_key_name(name: str) -> bool:
    """Key names are non-empty, without Unicode spaces, plus signs or control characters."""
    return bool(name) and not any(ch.isspace() or ch == "+" or ch < " " for ch in name)


def _check_key_name(name: str) -> None:
    if not is_key_name(name):
        raise LogInputError(Code.NOTE_KEY_MALFORMED, f"key name {name!r} is empty or has a space, plus or control")


def key_id(name: str, public_key: bytes) -> int:
    """The Ed25519 key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True, slots=True)
class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if len(self.public_key) != 32:
            raise LogInputError(Code.NOTE_KEY_MALFORMED, "an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> int:
        """The key ID signatures by this key start with."""
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier key string `<name>+<key ID hex>+<base64(0x01 || public key)>`."""
        return f"{self.name}+{self.key_id:08x}+{b64.encode(bytes([ED25519]) + self.public_key)}"

    @classmethod
    def from_vkey(cls, vkey: str) -> Verifier:
        """Parse a verifier key string; the key ID must be the one its name and key give."""
        name, sep1, rest = vkey.partition("+")
        id_hex, sep2, key_b64 = rest.partition("+")
        if not (sep1 and sep2) or len(id_hex) != 8 or any(c not in "0123456789abcdef" for c in id_hex):
            raise LogInputError(Code.NOTE_KEY_MALFORMED, "not a verifier key <name>+<8 hex digits>+<base64 key>")
        key = b64.decode(key_b64, Code.NOTE_KEY_MALFORMED, "the verifier key")
        if len(key) != 33 or key[0] != ED25519:
            raise LogInputError(Code.NOTE_KEY_MALFORMED, "not an Ed25519 verifier key (type 0x01, 32 bytes)")
        verifier = cls(name, key[1:])
        if verifier.key_id != int(id_hex, 16):
            raise LogInputError(Code.NOTE_KEY_MALFORMED, "the key ID does not match the name and key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature of `message`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class Signer:
    """A named Ed25519 private key that signs notes."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        _check_key_name(self.name)

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key under `name`."""
        return cls(name, Ed25519PrivateKey.generate())

    @property
    def verifier(self) -> Verifier:
        """The matching verifier."""
        return Verifier(self.name, self.private_key.public_key().public_bytes_raw())

    def signature_line(self, text: str) -> str:
        """`— <name> base64(key ID || signature)` over `text`, with its newline."""
        signature = self.private_key.sign(text.encode())
        return f"{_SIG_PREFIX}{self.name} {b64.encode(self.verifier.key_id.to_bytes(4, 'big') + signature)}\n"


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key name, key ID and signature bytes after the ID."""

    name: str
    key_id: int
    signature: bytes


@dataclass(frozen=True, slots=True)
class Note:
    """A note: its text (with the final newline) and its signatures, verified or from unknown keys."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]


def check_text(text: str) -> None:
    """Refuse note text that is empty, does not end in a newline or has another control character."""
    if not text.endswith("\n") or any(ch < " " and ch != "\n" for ch in text):
        raise LogInputError(Code.NOTE_MALFORMED, "note text must end in a newline and have no control characters")


def sign_note(text: str, signers: Sequence[Signer]) -> bytes:
    """The signed note: `text`, a blank line, one signature line per signer."""
    check_text(text)
    if not signers:
        raise LogInputError(Code.NOTE_MALFORMED, "a note needs at least one signature")
    return (text + "\n" + "".join(s.signature_line(text) for s in signers)).encode()


def parse_note(data: bytes) -> tuple[str, list[NoteSignature]]:
    """Split a note into its text and signature lines, without verifying anything."""
    if len(data) > MAX_NOTE_SIZE:
        raise LogInputError(Code.NOTE_MALFORMED, f"a note is at most {MAX_NOTE_SIZE} bytes")
    try:
        note = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LogInputError(Code.NOTE_MALFORMED, "a note is UTF-8") from None
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise LogInputError(Code.NOTE_MALFORMED, "no blank line before the signatures, or no final newline")
    text, block = note[: split + 1], note[split + 2 :]
    check_text(text)
    lines = block.split("\n")[:-1]
    if not lines or len(lines) > MAX_SIGNATURES:
        raise LogInputError(Code.NOTE_MALFORMED, f"a note has 1 to {MAX_SIGNATURES} signatures")
    signatures, seen = [], set()
    for number, line in enumerate(lines, 1):
        name, sep, sig_b64 = line.removeprefix(_SIG_PREFIX).partition(" ")
        if not line.startswith(_SIG_PREFIX) or not sep or not is_key_name(name):
            raise LogInputError(Code.NOTE_MALFORMED, "not a signature line", where=f"signature {number}")
        raw = b64.decode(sig_b64, Code.NOTE_MALFORMED, f"signature {number}")
        if len(raw) < 5:
            raise LogInputError(Code.NOTE_MALFORMED, "a signature is a key ID and at least one byte")
        signature = NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:])
        if (signature.name, signature.key_id) in seen:
            raise LogInputError(Code.NOTE_MALFORMED, f"two signatures by {name}", where=f"signature {number}")
        seen.add((signature.name, signature.key_id))
        signatures.append(signature)
    return text, signatures


def open_note(data: bytes, verifiers: Sequence[Verifier]) -> Note:
    """Parse a note and verify it: every signature by a known key must verify, and at least one must exist.

    A key is known when both its name and key ID match; signatures by other keys are kept, unverified.
    """
    text, signatures = parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified, unverified = [], []
    message = text.encode()
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified.append(sig)
        elif len(sig.signature) == _ED25519_SIG_SIZE and verifier.verify(message, sig.signature):
            verified.append(sig)
        else:
            raise LogVerificationError(Code.NOTE_SIGNATURE_INVALID, f"the signature by {sig.name} does not verify")
    if not verified:
        raise LogVerificationError(Code.NOTE_NO_TRUSTED_SIGNATURE, "no signature by a trusted key")
    return Note(text, tuple(verified), tuple(unverified))
