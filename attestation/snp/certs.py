"""AMD SEV-SNP certificates: the VCEK/VLEK with its AMD KDS extensions, and the ASK/ASVK -> ARK chain.

Trust anchor: the ARK the caller passes in the chain is used to verify the chain, and its public
key must also equal AMD's published ARK for the product (`AMD_ARK_SPKI_SHA256`), so a
self-consistent chain under a foreign root is refused.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from teeplane.attestation.der import DerError, read_tlv
from teeplane.attestation.errors import AppraisalError, Code, EvidenceFormatError
from teeplane.attestation.snp.report import Product, SigningKey, TcbVersion

_KDS = "1.3.6.1.4.1.3704.1"
_OID_PRODUCT_NAME = f"{_KDS}.2"
_OID_BL_SPL = f"{_KDS}.3.1"
_OID_TEE_SPL = f"{_KDS}.3.2"
_OID_SNP_SPL = f"{_KDS}.3.3"
_OID_UCODE_SPL = f"{_KDS}.3.8"
_OID_FMC_SPL = f"{_KDS}.3.9"
_OID_HW_ID = f"{_KDS}.4"
_OID_CSP_ID = f"{_KDS}.5"

_TAG_INTEGER = 0x02
_TAG_OCTET_STRING = 0x04
_TAG_IA5_STRING = 0x16

#: SHA-256 of the SubjectPublicKeyInfo of AMD's root keys, as published by the AMD KDS
#: (https://kdsintf.amd.com/vcek/v1/{product}/cert_chain). Taken from the ARKs vendored by
#: google/go-sev-guest (verify/trust) and confidential-containers/trustee
#: (deps/verifier/src/snp), which agree on all three.
AMD_ARK_SPKI_SHA256: dict[Product, str] = {
    Product.MILAN: "9f056bee44377e29308cb5ffa895bdfb62d18881fa6bed8d6f075b0204089cb9",
    Product.GENOA: "429a69c9422aa258ee4d8db5fcda9c6470ef15f8cd5a9cebd6cbc7d90b863831",
    Product.TURIN: "4f125410563a2ab9a50356f9243f6fe0b6f73de98603f53f90339c70e9d7ad08",
}

#: What cryptography raises for malformed certificates (it parses some fields only on access).
_PARSE_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    x509.DuplicateExtension,
)

#: AMD signs every certificate of the chain with RSASSA-PSS, SHA-384, MGF1-SHA-384, salt 48.
_AMD_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=48)


@dataclass(frozen=True, slots=True)
class EndorsementKey:
    """A VCEK or VLEK certificate and what its AMD extensions say.

    `tcb` holds the SPL extensions; `hw_id` (VCEK only) is the chip's CHIP_ID, 64 bytes, or 8 on
    Turin; `csp_id` (VLEK only) names the cloud provider the key was issued to.
    """

    certificate: x509.Certificate
    public_key: ec.EllipticCurvePublicKey
    kind: SigningKey
    product_name: str
    product: Product
    tcb: TcbVersion
    hw_id: bytes | None
    csp_id: str | None

    @property
    def issuer_role(self) -> str:
        """What AMD calls the key that signs this one: ASK for a VCEK, ASVK for a VLEK."""
        return "ASK" if self.kind is SigningKey.VCEK else "ASVK"


@dataclass(frozen=True, slots=True)
class AmdChain:
    """The issuer of an endorsement key (ASK or ASVK) and the AMD root key (ARK) above it."""

    intermediate: x509.Certificate
    root: x509.Certificate


def load_certificate(data: bytes) -> x509.Certificate:
    """A VCEK/VLEK certificate from PEM or DER bytes.

    AMD issues VCEKs with serial number 0, which RFC 5280 disallows; the X.509 library accepts
    them with a deprecation warning that is expected here and silenced for this load only.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive")
            if data.lstrip().startswith(b"-----BEGIN"):
                certificate = x509.load_pem_x509_certificate(data)
            else:
                certificate = x509.load_der_x509_certificate(data)
    except _PARSE_ERRORS as exc:
        raise _malformed(f"VCEK/VLEK certificate is neither a PEM nor a DER certificate: {exc}") from exc
    return _readable(certificate, "VCEK/VLEK certificate")


def load_chain(pem: bytes) -> list[x509.Certificate]:
    """The certificates of an AMD chain bundle (ASK, ARK and optionally ASVK), in any order."""
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except _PARSE_ERRORS as exc:
        raise _malformed(f"AMD certificate chain is not a PEM certificate bundle: {exc}") from exc
    if not certificates:
        raise _malformed("AMD certificate chain holds no PEM certificate")
    return [
        _readable(certificate, f"AMD certificate chain: certificate {index}")
        for index, certificate in enumerate(certificates)
    ]


def parse_endorsement_key(certificate: x509.Certificate) -> EndorsementKey:
    """Read a VCEK/VLEK: its P-384 key and AMD extensions (productName, SPLs, hwID or CSP_ID)."""
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP384R1):
        raise _malformed("VCEK/VLEK certificate does not hold an ECDSA P-384 public key")
    extensions = _amd_extensions(certificate)
    product_name = _ia5_string(_required(extensions, _OID_PRODUCT_NAME, "productName"), "productName")
    product = _product(product_name)
    fmc = None
    if product is Product.TURIN:
        fmc = _spl(_required(extensions, _OID_FMC_SPL, "fmcSPL"), "fmcSPL")
    tcb = TcbVersion(
        bootloader=_spl(_required(extensions, _OID_BL_SPL, "blSPL"), "blSPL"),
        tee=_spl(_required(extensions, _OID_TEE_SPL, "teeSPL"), "teeSPL"),
        snp=_spl(_required(extensions, _OID_SNP_SPL, "snpSPL"), "snpSPL"),
        microcode=_spl(_required(extensions, _OID_UCODE_SPL, "ucodeSPL"), "ucodeSPL"),
        fmc=fmc,
    )
    hw_id_value = extensions.get(_OID_HW_ID)
    csp_id_value = extensions.get(_OID_CSP_ID)
    if (hw_id_value is None) == (csp_id_value is None):
        raise _malformed("VCEK/VLEK certificate must carry exactly one of hwID (VCEK) and CSP_ID (VLEK)")
    hw_id = None if hw_id_value is None else _hw_id(hw_id_value, 8 if product is Product.TURIN else 64)
    csp_id = None if csp_id_value is None else _ia5_string(csp_id_value, "CSP_ID")
    return EndorsementKey(
        certificate=certificate,
        public_key=key,
        kind=SigningKey.VCEK if hw_id is not None else SigningKey.VLEK,
        product_name=product_name,
        product=product,
        tcb=tcb,
        hw_id=hw_id,
        csp_id=csp_id,
    )


def resolve_chain(key: EndorsementKey, bundle: Sequence[x509.Certificate]) -> AmdChain:
    """Find the endorsement key's issuer (ASK/ASVK) and the self-issued ARK above it, by name."""
    leaf = key.certificate
    intermediate = _by_subject(bundle, leaf.issuer)
    if intermediate is None or intermediate.issuer == intermediate.subject:
        raise AppraisalError(
            Code.SNP_CHAIN_INVALID,
            f"the chain holds no {key.issuer_role} named {leaf.issuer.rfc4514_string()}, "
            f"the issuer of the {key.kind.name}",
            where="chain",
        )
    root = _by_subject(bundle, intermediate.issuer)
    if root is None or root.issuer != root.subject:
        raise AppraisalError(
            Code.SNP_CHAIN_INVALID,
            f"the chain holds no self-issued ARK named {intermediate.issuer.rfc4514_string()}",
            where="chain",
        )
    return AmdChain(intermediate=intermediate, root=root)


def verify_chain(key: EndorsementKey, chain: AmdChain) -> str:
    """Verify VCEK/VLEK <- ASK/ASVK <- ARK <- ARK (RSA-PSS SHA-384); return what was verified."""
    links = (
        (key.certificate, key.kind.name, chain.intermediate, key.issuer_role),
        (chain.intermediate, key.issuer_role, chain.root, "ARK"),
        (chain.root, "ARK", chain.root, "ARK"),
    )
    for subject, subject_role, issuer, issuer_role in links:
        _verify_issued_by(subject, subject_role, issuer, issuer_role)
    return (
        f"{key.kind.name} <- {key.issuer_role} <- ARK (self-signed): "
        "RSA-PSS SHA-384 signatures verified, issuers are CAs"
    )


def check_ark_pinned(root: x509.Certificate, product: Product) -> str:
    """Check the chain's ARK is AMD's published root key for `product`."""
    spki = root.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(spki).hexdigest()
    if digest != AMD_ARK_SPKI_SHA256[product]:
        raise AppraisalError(
            Code.SNP_CHAIN_INVALID,
            f"the chain's ARK key (SPKI SHA-256 {digest}) is not AMD's published ARK-{product}",
            where="chain.ark",
        )
    return f"ARK key is AMD's published ARK-{product} (SPKI SHA-256 {digest})"


def check_validity(certificates: Sequence[tuple[str, x509.Certificate]], at: datetime) -> str:
    """Check each (role, certificate) is within its validity window at `at`."""
    windows = []
    for role, certificate in certificates:
        not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        if not not_before <= at <= not_after:
            raise AppraisalError(
                Code.SNP_CERT_EXPIRED,
                f"the {role} certificate is valid from {not_before.isoformat()} to "
                f"{not_after.isoformat()}, not at {at.isoformat()}",
                where=f"certificate.{role.lower()}",
            )
        windows.append(f"{role} until {not_after.date().isoformat()}")
    return f"valid at {at.isoformat()}: {', '.join(windows)}"


def _verify_issued_by(subject: x509.Certificate, subject_role: str, issuer: x509.Certificate, issuer_role: str) -> None:
    try:
        is_ca = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise AppraisalError(Code.SNP_CHAIN_INVALID, f"the {issuer_role} is not a CA certificate", where="chain")
    issuer_key = issuer.public_key()
    if not isinstance(issuer_key, rsa.RSAPublicKey):
        raise AppraisalError(Code.SNP_CHAIN_INVALID, f"the {issuer_role} key is not RSA", where="chain")
    try:
        issuer_key.verify(subject.signature, subject.tbs_certificate_bytes, _AMD_PSS, hashes.SHA384())
    except InvalidSignature as exc:
        raise AppraisalError(
            Code.SNP_CHAIN_INVALID,
            f"the {subject_role} certificate is not signed by the {issuer_role} key (RSA-PSS SHA-384, salt 48)",
            where="chain",
        ) from exc


def _by_subject(bundle: Sequence[x509.Certificate], name: x509.Name) -> x509.Certificate | None:
    return next((certificate for certificate in bundle if certificate.subject == name), None)


def _readable(certificate: x509.Certificate, what: str) -> x509.Certificate:
    """`certificate`, once every part used later parsed: cryptography parses fields lazily."""
    try:
        _ = (certificate.subject, certificate.issuer, certificate.extensions, certificate.public_key())
        _ = (certificate.not_valid_before_utc, certificate.not_valid_after_utc)
    except _PARSE_ERRORS as exc:
        raise _malformed(f"{what} is unreadable: {exc!r}") from exc
    return certificate


def _amd_extensions(certificate: x509.Certificate) -> dict[str, bytes]:
    """The raw DER values of the certificate's AMD KDS extensions, by dotted OID."""
    return {
        extension.oid.dotted_string: extension.value.value
        for extension in certificate.extensions
        if isinstance(extension.value, x509.UnrecognizedExtension)
        and extension.oid.dotted_string.startswith(_KDS + ".")
    }


def _required(extensions: dict[str, bytes], oid: str, name: str) -> bytes:
    value = extensions.get(oid)
    if value is None:
        raise _malformed(f"VCEK/VLEK certificate lacks the AMD {name} extension ({oid})")
    return value


def _product(product_name: str) -> Product:
    """The product line of a productName such as "Milan-B0" or "Genoa"."""
    try:
        return Product(product_name.split("-", 1)[0])
    except ValueError:
        raise _malformed(f"VCEK/VLEK productName {product_name!r}: unsupported AMD product") from None


def _der_content(value: bytes, tag: int, name: str) -> bytes:
    """The content of `value`, which must be exactly one DER element with `tag`."""
    try:
        found, start, end = read_tlv(value, 0, len(value))
    except DerError as exc:
        raise _malformed(f"AMD extension {name}: bad DER length ({exc.message})") from None
    if found != tag:
        raise _malformed(f"AMD extension {name}: expected DER tag {tag:#04x}, found {found:#04x}")
    if end != len(value):
        raise _malformed(f"AMD extension {name}: DER length {end - start} does not fill {len(value)} bytes")
    return value[start:end]


def _spl(value: bytes, name: str) -> int:
    """A security patch level: a DER INTEGER in 0..255."""
    content = _der_content(value, _TAG_INTEGER, name)
    if not 1 <= len(content) <= 2:
        raise _malformed(f"AMD extension {name}: INTEGER of {len(content)} bytes")
    spl = int.from_bytes(content, "big", signed=True)
    if not 0 <= spl <= 0xFF:
        raise _malformed(f"AMD extension {name}: {spl} is not a security patch level (0..255)")
    return spl


def _hw_id(value: bytes, size: int) -> bytes:
    """The hwID: raw bytes in older certificates, a DER OCTET STRING in newer ones."""
    if len(value) == size:
        return value
    content = _der_content(value, _TAG_OCTET_STRING, "hwID")
    if len(content) != size:
        raise _malformed(f"AMD extension hwID: {len(content)} bytes, expected {size}")
    return content


def _ia5_string(value: bytes, name: str) -> str:
    content = _der_content(value, _TAG_IA5_STRING, name)
    if not content.isascii():
        raise _malformed(f"AMD extension {name}: IA5String is not ASCII")
    return content.decode("ascii")


def _malformed(message: str) -> EvidenceFormatError:
    return EvidenceFormatError(Code.SNP_CERTIFICATE_MALFORMED, message, where="certificate")
