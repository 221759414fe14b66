"""C2SP signed notes: the Go sumdb/note reference key and note byte for byte, strict parsing, and the
rules for known, unknown and failing signatures."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from teeplane.baseline.errors import Code, LogInputError, LogVerificationError
from teeplane.baseline.tlog.note import Signer, Verifier, key_id, open_note, parse_note, sign_note

# golang.org/x/mod/sumdb/note, the package documentation's example: a private key, its verifier key
# and the note it signs.
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()
# more verifier keys from the Go and transparency-dev tests (the second has a '+' in its base64)
OTHER_VKEYS = [
    "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop",
    "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
]


def go_signer() -> Signer:
    return Signer("PeterNeumann", Ed25519PrivateKey.from_private_bytes(GO_SEED))


def test_the_go_reference_key_and_note_byte_for_byte() -> None:
    signer = go_signer()
    assert signer.verifier.vkey == GO_VKEY
    assert signer.verifier.key_id == 0xC74F20A3 == key_id("PeterNeumann", signer.verifier.public_key)
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE
    note = open_note(GO_NOTE, [Verifier.from_vkey(GO_VKEY)])
    assert note.text == GO_TEXT and [s.name for s in note.verified] == ["PeterNeumann"] and not note.unverified


@pytest.mark.parametrize("vkey", [GO_VKEY, *OTHER_VKEYS])
def test_verifier_keys_round_trip(vkey: str) -> None:
    assert Verifier.from_vkey(vkey).vkey == vkey


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong key ID
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper-case hex
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 7 hex digits
        "PeterNeumann+c74f20a3+Alpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # key type 0x02
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short key
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=",  # bad padding
        "PeterNeumann+c74f20a3",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_keys_are_refused(vkey: str) -> None:
    with pytest.raises(LogInputError, match=Code.NOTE_KEY_MALFORMED):
        Verifier.from_vkey(vkey)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there", "nbsp\u00a0", "line\nbreak"])
def test_bad_key_names_are_refused(name: str) -> None:
    with pytest.raises(LogInputError, match=Code.NOTE_KEY_MALFORMED):
        Signer.generate(name)


def test_unknown_keys_are_ignored_but_one_trusted_signature_is_needed() -> None:
    peter, other = go_signer(), Signer.generate("example.com/witness")
    both = sign_note(GO_TEXT, [other, peter])
    note = open_note(both, [peter.verifier])
    assert [s.name for s in note.verified] == ["PeterNeumann"]
    assert [s.name for s in note.unverified] == ["example.com/witness"]
    with pytest.raises(LogVerificationError, match=Code.NOTE_NO_TRUSTED_SIGNATURE):
        open_note(sign_note(GO_TEXT, [other]), [peter.verifier])
    # same name, another key (so another key ID): unknown, not a failed signature
    impostor = Signer.generate("PeterNeumann")
    with pytest.raises(LogVerificationError, match=Code.NOTE_NO_TRUSTED_SIGNATURE):
        open_note(sign_note(GO_TEXT, [impostor]), [peter.verifier])


def test_a_failing_signature_by_a_known_key_rejects_the_note() -> None:
    peter, other = go_signer(), Signer.generate("example.com/witness")
    altered = GO_NOTE.replace(b"problem is", b"problem was")
    with pytest.raises(LogVerificationError, match=Code.NOTE_SIGNATURE_INVALID):
        open_note(altered, [peter.verifier])
    # a good signature by a trusted key does not save a note another trusted key's signature fails on
    good_other = sign_note(GO_TEXT.replace("is.", "was."), [other]).split(b"\n\n")[1]
    with pytest.raises(LogVerificationError, match=Code.NOTE_SIGNATURE_INVALID):
        open_note(altered.replace(b"\n\n\xe2", b"\n\n" + good_other + b"\xe2"), [peter.verifier, other.verifier])


@pytest.mark.parametrize(
    "note",
    [
        GO_NOTE[:-1],  # no final newline
        GO_NOTE.replace(b"\n\n", b"\n"),  # no blank line
        GO_TEXT.encode() + b"\n",  # no signature
        GO_NOTE.replace(b"\xe2\x80\x94 ", b"-- "),  # not an em dash
        GO_NOTE.replace(b"PeterNeumann x08", b"PeterNeumann  x08"),  # two spaces
        GO_NOTE.replace(b"JnAM=\n", b"JnAM\n"),  # unpadded base64
        GO_NOTE.replace(b"problem,", b"problem,\t"),  # a control character
        GO_NOTE.replace(b"problem,", b"problem,\xff"),  # not UTF-8
        GO_NOTE + GO_NOTE.split(b"\n\n")[1],  # the same signature twice
        GO_TEXT.encode() + b"\n\xe2\x80\x94 PeterNeumann AAAA\n",  # a signature of no bytes after the ID
        GO_TEXT.encode() + b"\n" + b"".join(b"\xe2\x80\x94 k%d AAAAAAA=\n" % i for i in range(101)),
    ],
)
def test_malformed_notes_are_refused(note: bytes) -> None:
    with pytest.raises(LogInputError, match=Code.NOTE_MALFORMED):
        parse_note(note)


def test_the_text_ends_at_the_last_blank_line() -> None:
    text = "first paragraph\n\nsecond paragraph\n"
    note = sign_note(text, [go_signer()])
    assert open_note(note, [go_signer().verifier]).text == text
    with pytest.raises(LogInputError, match=Code.NOTE_MALFORMED):
        sign_note("no final newline", [go_signer()])
