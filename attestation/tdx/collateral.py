"""DCAP collateral for TDX: TCB Info, QE Identity, their signing chain, and the CRLs.

Two transport forms are read:

* the collateral bundle JSON (as dcap-qvl and others use): `tcb_info` / `qe_identity` hold the
  exact JSON text that was signed, `*_signature` the hex r||s signature, `*_issuer_chain` PEM,
  `pck_crl` / `root_ca_crl` hex DER, `pck_crl_issuer_chain` PEM;
* separate Intel PCS responses: `{"tcbInfo": {...}, "signature": "hex"}` and
  `{"enclaveIdentity": {...}, "signature": "hex"}`, where the signature covers the exact bytes of
  the inner object as they stand in the file, plus PEM/DER/hex CRL files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from teeplane.attestation.errors import Code, EvidenceFormatError


def _hex_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-fA-F]{2})*", value):
        raise ValueError("expected a hex string")
    return bytes.fromhex(value)


_M = TypeVar("_M", bound=BaseModel)
HexBytes = Annotated[bytes, BeforeValidator(_hex_bytes)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class _Svn(_Model):
    svn: int = Field(ge=0, le=0xFFFF)


class _PlatformTcb(_Model):
    sgx_components: tuple[_Svn, ...] = Field(alias="sgxtcbcomponents", min_length=16, max_length=16)
    pcesvn: int = Field(ge=0, le=0xFFFF)
    tdx_components: tuple[_Svn, ...] = Field(default=(), alias="tdxtcbcomponents", min_length=0, max_length=16)


class TcbLevel(_Model):
    """One platform TCB level of TCB Info: the component SVNs it needs and its status."""

    tcb: _PlatformTcb
    tcb_date: str = Field(alias="tcbDate")
    status: str = Field(alias="tcbStatus")
    advisory_ids: tuple[str, ...] = Field(default=(), alias="advisoryIDs")

    @cached_property
    def sgx_svns(self) -> tuple[int, ...]:
        """The 16 SGX TCB component SVNs."""
        return tuple(c.svn for c in self.tcb.sgx_components)

    @cached_property
    def tdx_svns(self) -> tuple[int, ...]:
        """The 16 TDX TCB component SVNs."""
        return tuple(c.svn for c in self.tcb.tdx_components)


class _IsvSvn(_Model):
    isvsvn: int = Field(ge=0, le=0xFFFF)


class IsvTcbLevel(_Model):
    """A TCB level keyed by one ISV SVN (QE identity, TDX module identity)."""

    tcb: _IsvSvn
    tcb_date: str = Field(alias="tcbDate")
    status: str = Field(alias="tcbStatus")
    advisory_ids: tuple[str, ...] = Field(default=(), alias="advisoryIDs")


class TdxModule(_Model):
    """Identity of a TDX module: its signer and (masked) SEAM attributes."""

    id: str = ""
    mrsigner: HexBytes
    attributes: HexBytes
    attributes_mask: HexBytes = Field(alias="attributesMask")
    tcb_levels: tuple[IsvTcbLevel, ...] = Field(default=(), alias="tcbLevels")


class TcbInfo(_Model):
    """Intel TCB Info (v3 for TDX)."""

    id: str = "SGX"
    version: int
    issue_date: datetime = Field(alias="issueDate")
    next_update: datetime = Field(alias="nextUpdate")
    fmspc: HexBytes
    pce_id: HexBytes = Field(alias="pceId")
    tcb_type: int = Field(alias="tcbType")
    tcb_evaluation_data_number: int = Field(alias="tcbEvaluationDataNumber")
    tdx_module: TdxModule | None = Field(default=None, alias="tdxModule")
    tdx_module_identities: tuple[TdxModule, ...] = Field(default=(), alias="tdxModuleIdentities")
    tcb_levels: tuple[TcbLevel, ...] = Field(alias="tcbLevels", min_length=1)


class QeIdentity(_Model):
    """Intel enclave identity of the TD Quoting Enclave."""

    id: str
    version: int
    issue_date: datetime = Field(alias="issueDate")
    next_update: datetime = Field(alias="nextUpdate")
    tcb_evaluation_data_number: int = Field(alias="tcbEvaluationDataNumber")
    miscselect: HexBytes
    miscselect_mask: HexBytes = Field(alias="miscselectMask")
    attributes: HexBytes
    attributes_mask: HexBytes = Field(alias="attributesMask")
    mrsigner: HexBytes
    isvprodid: int
    tcb_levels: tuple[IsvTcbLevel, ...] = Field(alias="tcbLevels", min_length=1)


@dataclass(frozen=True, slots=True)
class SignedDocument:
    """A signed collateral JSON document: the exact signed bytes and the raw r||s signature."""

    name: str
    raw: bytes
    signature: bytes

    def body(self) -> dict[str, Any]:
        """The decoded JSON object."""
        decoded = json.loads(self.raw)
        if not isinstance(decoded, dict):
            raise EvidenceFormatError(Code.COLLATERAL_MALFORMED, f"{self.name} is not a JSON object")
        return decoded


@dataclass(frozen=True)
class Collateral:
    """Everything DCAP needs besides the quote; CRLs and their chain may be absent."""

    tcb_info: SignedDocument
    qe_identity: SignedDocument
    tcb_info_chain: bytes
    qe_identity_chain: bytes
    pck_crl: bytes | None = None
    root_ca_crl: bytes | None = None
    pck_crl_chain: bytes | None = None

    @cached_property
    def tcb_info_model(self) -> TcbInfo:
        """TCB Info, validated (memoised; collateral is immutable)."""
        return _validate(TcbInfo, self.tcb_info)

    @cached_property
    def qe_identity_model(self) -> QeIdentity:
        """QE Identity, validated (memoised)."""
        return _validate(QeIdentity, self.qe_identity)


def _validate(model: type[_M], doc: SignedDocument) -> _M:
    try:
        return model.model_validate(doc.body())
    except json.JSONDecodeError as exc:
        raise EvidenceFormatError(
            Code.COLLATERAL_MALFORMED, f"{doc.name} is not JSON: {exc.msg} at offset {exc.pos}"
        ) from None
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise EvidenceFormatError(
            Code.COLLATERAL_MALFORMED, f"{doc.name}.{path}: {first['msg']}", where=f"{doc.name}.{path}"
        ) from None


def load_bundle(data: bytes) -> Collateral:
    """Collateral from the bundle JSON form (see the module docstring)."""
    bundle = _json_object(data, "collateral bundle")

    def text(key: str, required: bool = True) -> str | None:
        value = bundle.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise EvidenceFormatError(
                Code.COLLATERAL_MALFORMED, f"collateral bundle: '{key}' must be a non-empty string", where=key
            )
        return value

    def signature(key: str) -> bytes:
        value = text(key) or ""
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise EvidenceFormatError(
                Code.COLLATERAL_MALFORMED, f"collateral bundle: '{key}' is not hex", where=key
            ) from None
        return _check_signature_size(raw, key)

    def optional(key: str) -> bytes | None:
        value = text(key, required=False)
        return value.encode() if value is not None else None

    return Collateral(
        tcb_info=SignedDocument("tcb_info", (text("tcb_info") or "").encode(), signature("tcb_info_signature")),
        qe_identity=SignedDocument(
            "qe_identity", (text("qe_identity") or "").encode(), signature("qe_identity_signature")
        ),
        tcb_info_chain=(text("tcb_info_issuer_chain") or "").encode(),
        qe_identity_chain=(text("qe_identity_issuer_chain") or "").encode(),
        pck_crl=optional("pck_crl"),
        root_ca_crl=optional("root_ca_crl"),
        pck_crl_chain=optional("pck_crl_issuer_chain"),
    )


def load_pcs_files(
    tcb_info: bytes,
    qe_identity: bytes,
    tcb_signing_chain: bytes,
    pck_crl: bytes | None = None,
    root_ca_crl: bytes | None = None,
) -> Collateral:
    """Collateral from separate Intel PCS responses and files."""
    return Collateral(
        tcb_info=parse_pcs_response(tcb_info, "tcbInfo"),
        qe_identity=parse_pcs_response(qe_identity, "enclaveIdentity"),
        tcb_info_chain=tcb_signing_chain,
        qe_identity_chain=tcb_signing_chain,
        pck_crl=pck_crl,
        root_ca_crl=root_ca_crl,
    )


def parse_pcs_response(data: bytes, key: str) -> SignedDocument:
    """`{"<key>": {...}, "signature": "hex"}`: keep the exact bytes of the inner object."""
    outer = _json_object(data, key)
    inner = outer.get(key)
    sig_hex = outer.get("signature")
    if not isinstance(inner, dict) or not isinstance(sig_hex, str):
        raise EvidenceFormatError(
            Code.COLLATERAL_MALFORMED, f"a PCS {key} response needs '{key}' (object) and 'signature' (hex)"
        )
    text = data.decode("utf-8")
    decoder = json.JSONDecoder()
    for match in re.finditer(rf'"{re.escape(key)}"\s*:\s*', text):
        try:
            value, end = decoder.raw_decode(text, match.end())
        except json.JSONDecodeError:
            continue
        if value == inner:
            raw = text[match.end() : end].encode("utf-8")
            break
    else:
        raise EvidenceFormatError(Code.COLLATERAL_MALFORMED, f"cannot locate the signed '{key}' bytes")
    try:
        signature = bytes.fromhex(sig_hex)
    except ValueError:
        raise EvidenceFormatError(Code.COLLATERAL_MALFORMED, f"{key} signature is not hex") from None
    return SignedDocument(key, raw, _check_signature_size(signature, f"{key} signature"))


def _check_signature_size(raw: bytes, what: str) -> bytes:
    if len(raw) != 64:
        raise EvidenceFormatError(
            Code.COLLATERAL_MALFORMED, f"{what} is {len(raw)} bytes, expected 64 (r||s)", where=what
        )
    return raw


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        decoded = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvidenceFormatError(Code.COLLATERAL_MALFORMED, f"{what} is not JSON: {exc}") from None
    if not isinstance(decoded, dict):
        raise EvidenceFormatError(Code.COLLATERAL_MALFORMED, f"{what} is not a JSON object")
    return decoded
