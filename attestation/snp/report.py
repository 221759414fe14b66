"""The SEV-SNP ATTESTATION_REPORT structure (AMD SEV-SNP ABI spec, table "ATTESTATION_REPORT").

Pure parsing: no cryptography and no policy. Reserved (must-be-zero) ranges are checked so a
report is either read completely or refused with a typed error naming the offset.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from teeplane.attestation.binary import Reader
from teeplane.attestation.errors import Code, EvidenceFormatError

REPORT_SIZE = 0x4A0
#: The signature covers report[0:SIGNED_SIZE]; the signature itself starts there.
SIGNED_SIZE = 0x2A0
#: v2 (SNP ABI 1.55), v3 (adds CPUID family/model/stepping), v5 (adds the mitigation vectors).
SUPPORTED_VERSIONS = frozenset({2, 3, 5})
#: SIGNATURE_ALGO value of ECDSA P-384 with SHA-384, the only algorithm the spec defines.
ECDSA_P384_SHA384 = 1

_POLICY_DEBUG_BIT = 19
_ECDSA_COMPONENT_SIZE = 72
_SIGNATURE_SIZE = 0x200


class SigningKey(IntEnum):
    """Which key signed the report: SIGNING_KEY, bits 2..4 of the flags word at 0x48."""

    VCEK = 0
    VLEK = 1
    NONE = 7


_SIGNING_KEY_VALUES = frozenset(key.value for key in SigningKey)


class Product(StrEnum):
    """AMD EPYC product lines: they differ in the TCB_VERSION layout and in their AMD root key."""

    MILAN = "Milan"
    GENOA = "Genoa"
    TURIN = "Turin"


@dataclass(frozen=True, slots=True)
class TcbVersion:
    """A TCB_VERSION as the security patch levels of each firmware part (`fmc` only on Turin)."""

    bootloader: int
    tee: int
    snp: int
    microcode: int
    fmc: int | None = None

    @classmethod
    def decode(cls, raw: int, product: Product) -> TcbVersion:
        """Decode a raw TCB_VERSION u64 with the byte layout of `product`.

        Milan and Genoa: bootloader, tee, 4 reserved, snp, microcode.
        Turin: fmc, bootloader, tee, snp, 3 reserved, microcode.
        """
        b = raw.to_bytes(8, "little")
        if product is Product.TURIN:
            return cls(bootloader=b[1], tee=b[2], snp=b[3], microcode=b[7], fmc=b[0])
        return cls(bootloader=b[0], tee=b[1], snp=b[6], microcode=b[7])

    def __str__(self) -> str:
        fmc = "" if self.fmc is None else f"fmc={self.fmc} "
        return f"{fmc}bootloader={self.bootloader} tee={self.tee} snp={self.snp} microcode={self.microcode}"


@dataclass(frozen=True, slots=True)
class SnpReport:
    """A parsed SEV-SNP attestation report. TCB fields stay raw: their layout depends on the product.

    Firmware versions are (major, minor, build). `cpuid_*` are None before v3, the mitigation
    vectors None before v5. `signature_r` / `signature_s` are the ECDSA components (stored
    little-endian in the report).
    """

    raw: bytes
    version: int
    guest_svn: int
    policy: int
    family_id: bytes
    image_id: bytes
    vmpl: int
    signature_algo: int
    current_tcb: int
    platform_info: int
    author_key_en: bool
    mask_chip_id: bool
    signing_key: SigningKey
    report_data: bytes
    measurement: bytes
    host_data: bytes
    id_key_digest: bytes
    author_key_digest: bytes
    report_id: bytes
    report_id_ma: bytes
    reported_tcb: int
    cpuid_family: int | None
    cpuid_model: int | None
    cpuid_stepping: int | None
    chip_id: bytes
    committed_tcb: int
    current_firmware: tuple[int, int, int]
    committed_firmware: tuple[int, int, int]
    launch_tcb: int
    launch_mit_vector: int | None
    current_mit_vector: int | None
    signature_r: int
    signature_s: int

    @property
    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: report[0:0x2A0]."""
        return self.raw[:SIGNED_SIZE]

    @property
    def debug(self) -> bool:
        """Guest policy bit 19: the host may debug (decrypt) the guest."""
        return bool(self.policy >> _POLICY_DEBUG_BIT & 1)


def parse_report(data: bytes) -> SnpReport:
    """Parse a 0x4A0-byte SEV-SNP attestation report (versions 2, 3 and 5).

    Raises EvidenceFormatError: `snp.report_malformed` for a wrong size, a reserved value or a
    non-zero reserved range; `snp.unsupported_version` for any other report version.
    """
    if len(data) != REPORT_SIZE:
        raise EvidenceFormatError(
            Code.SNP_REPORT_MALFORMED,
            f"an SEV-SNP attestation report is {REPORT_SIZE:#x} bytes, got {len(data):#x}",
            where="report",
        )
    r = Reader(data, "report", Code.SNP_REPORT_MALFORMED)
    version = r.u32("version")
    if version not in SUPPORTED_VERSIONS:
        raise EvidenceFormatError(
            Code.SNP_UNSUPPORTED_VERSION,
            f"report version {version} is not supported (supported: {', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})",
            where="report+0x0",
        )
    guest_svn = r.u32("guest_svn")
    policy = r.u64("policy")
    family_id = r.bytes(16, "family_id")
    image_id = r.bytes(16, "image_id")
    vmpl = r.u32("vmpl")
    signature_algo = r.u32("signature_algo")
    current_tcb = r.u64("current_tcb")
    platform_info = r.u64("platform_info")
    flags_at = r.pos
    flags = r.u32("flags")
    signing_key = _signing_key(flags, flags_at)
    _expect_zero(r, 4, "reserved after flags")
    report_data = r.bytes(64, "report_data")
    measurement = r.bytes(48, "measurement")
    host_data = r.bytes(32, "host_data")
    id_key_digest = r.bytes(48, "id_key_digest")
    author_key_digest = r.bytes(48, "author_key_digest")
    report_id = r.bytes(32, "report_id")
    report_id_ma = r.bytes(32, "report_id_ma")
    reported_tcb = r.u64("reported_tcb")
    cpuid: bytes | None = None
    if version >= 3:
        cpuid = r.bytes(3, "cpuid_fam_mod_step")
    _expect_zero(r, 0x1A0 - r.pos, "reserved before chip_id")
    chip_id = r.bytes(64, "chip_id")
    committed_tcb = r.u64("committed_tcb")
    current_firmware = _firmware_version(r, "current")
    committed_firmware = _firmware_version(r, "committed")
    launch_tcb = r.u64("launch_tcb")
    launch_mit_vector: int | None = None
    current_mit_vector: int | None = None
    if version >= 5:
        launch_mit_vector = r.u64("launch_mit_vector")
        current_mit_vector = r.u64("current_mit_vector")
    _expect_zero(r, SIGNED_SIZE - r.pos, "reserved before signature")
    signature_r = int.from_bytes(r.bytes(_ECDSA_COMPONENT_SIZE, "signature_r"), "little")
    signature_s = int.from_bytes(r.bytes(_ECDSA_COMPONENT_SIZE, "signature_s"), "little")
    padding = _SIGNATURE_SIZE - 2 * _ECDSA_COMPONENT_SIZE
    if signature_algo == ECDSA_P384_SHA384:
        _expect_zero(r, padding, "reserved after the ECDSA signature")
    else:
        r.skip(padding, "signature")
    return SnpReport(
        raw=data,
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        family_id=family_id,
        image_id=image_id,
        vmpl=vmpl,
        signature_algo=signature_algo,
        current_tcb=current_tcb,
        platform_info=platform_info,
        author_key_en=bool(flags & 1),
        mask_chip_id=bool(flags >> 1 & 1),
        signing_key=signing_key,
        report_data=report_data,
        measurement=measurement,
        host_data=host_data,
        id_key_digest=id_key_digest,
        author_key_digest=author_key_digest,
        report_id=report_id,
        report_id_ma=report_id_ma,
        reported_tcb=reported_tcb,
        cpuid_family=None if cpuid is None else cpuid[0],
        cpuid_model=None if cpuid is None else cpuid[1],
        cpuid_stepping=None if cpuid is None else cpuid[2],
        chip_id=chip_id,
        committed_tcb=committed_tcb,
        current_firmware=current_firmware,
        committed_firmware=committed_firmware,
        launch_tcb=launch_tcb,
        launch_mit_vector=launch_mit_vector,
        current_mit_vector=current_mit_vector,
        signature_r=signature_r,
        signature_s=signature_s,
    )


def _signing_key(flags: int, offset: int) -> SigningKey:
    """SIGNING_KEY from the flags word; bits 5..31 are reserved and values 2..6 undefined."""
    value = flags >> 2 & 0b111
    if flags >> 5 or value not in _SIGNING_KEY_VALUES:
        raise EvidenceFormatError(
            Code.SNP_REPORT_MALFORMED,
            f"report: flags {flags:#x} set reserved bits or an undefined SIGNING_KEY ({value})",
            where=f"report+{offset:#x}",
        )
    return SigningKey(value)


def _firmware_version(r: Reader, which: str) -> tuple[int, int, int]:
    build, minor, major = r.bytes(3, f"{which}_firmware")
    _expect_zero(r, 1, f"reserved after {which}_firmware")
    return major, minor, build


def _expect_zero(r: Reader, n: int, field: str) -> None:
    offset = r.pos
    if any(r.bytes(n, field)):
        raise EvidenceFormatError(
            Code.SNP_REPORT_MALFORMED,
            f"report: {field} ({n} bytes at {offset:#x}) must be zero",
            where=f"report+{offset:#x}",
        )
