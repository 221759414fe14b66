"""Evidence providers: where the EPS gets a TEE's signed evidence for 64 bytes of report data.

`ConfigfsTsmProvider` speaks the Linux configfs-tsm report ABI (Documentation/ABI/testing/
configfs-tsm) on real TDX and SEV-SNP guests; `SimulatedTdxProvider` quotes a simulated TD.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, TypeVar

from teeplane.attestation.binary import Reader
from teeplane.attestation.binding import REPORT_DATA_SIZE
from teeplane.attestation.errors import Code
from teeplane.attestation.sim.eventlog import write_event_log
from teeplane.attestation.sim.td import SimulatedTd
from teeplane.errors import TeeplaneError

#: Where configfs-tsm report entries are created.
CONFIGFS_TSM_ROOT = Path("/sys/kernel/config/tsm/report")
#: The CCEL (TDX event log) as the kernel exports the ACPI table data.
CCEL_PATH = Path("/sys/firmware/acpi/tables/data/CCEL")
Tee = Literal["tdx", "snp"]

#: configfs-tsm `provider` names and the TEE each one reports for.
TSM_PROVIDERS: dict[str, Tee] = {"tdx_guest": "tdx", "sev_guest": "snp"}
#: The highest `privlevel` configfs-tsm accepts (TSM_PRIVLEVEL_MAX).
MAX_PRIVLEVEL = 3
#: How many fresh report entries to try when another writer changes ours meanwhile.
DEFAULT_ATTEMPTS = 3

#: GUIDs of the SEV-SNP certificate table (GHCB spec, MSG_REPORT_REQ), leaf first.
_SNP_CERT_GUIDS = (
    uuid.UUID("63da758d-e664-4564-adc5-f4b93be8accd"),  # VCEK
    uuid.UUID("a8074bc2-a25a-483e-aae6-39c045a0b8a1"),  # VLEK
    uuid.UUID("4ab7b379-bbac-4fe4-a02f-05aef327c782"),  # ASK
    uuid.UUID("c0b406a4-a803-4952-9743-3fb6014cd0ae"),  # ARK
)

_T = TypeVar("_T")


class EvidenceProviderError(TeeplaneError):
    """The TEE could not produce evidence (no device, an I/O error, a concurrent writer)."""

    http_status = 503

    def __init__(self, code: Code, message: str, *, where: str | None = None) -> None:
        super().__init__(code.value, message, where=where)


@dataclass(frozen=True, slots=True)
class Evidence:
    """Signed evidence and what a verifier needs with it.

    `evidence` is a TDX quote or SEV-SNP report; `event_log` the CCEL, when there is one;
    `collateral` the simulation's signed collateral bundle (simulated providers only);
    `certificates` DER certificates from the host, leaf (VCEK or VLEK) first (SEV-SNP only).
    """

    tee: Tee
    evidence: bytes
    event_log: bytes | None = None
    simulated: bool = False
    collateral: bytes | None = None
    certificates: tuple[bytes, ...] = ()


class EvidenceProvider(Protocol):
    """A source of evidence for one TEE."""

    @property
    def tee(self) -> Tee:
        """The TEE type."""

    @property
    def simulated(self) -> bool:
        """Whether the evidence comes from a simulated TEE."""

    def evidence(self, report_data: bytes) -> Evidence:
        """Evidence whose report data is `report_data` (at most 64 bytes)."""


class ConfigfsOps(Protocol):
    """The file operations configfs-tsm is driven with (the seam a test kernel replaces)."""

    def mkdir(self, path: Path) -> None:
        """Create a report entry; configfs populates its attributes."""

    def rmdir(self, path: Path) -> None:
        """Remove a report entry, attributes included."""

    def read(self, path: Path) -> bytes:
        """Read an attribute; reading `outblob` makes the TEE generate the report."""

    def write(self, path: Path, data: bytes) -> None:
        """Write an attribute; every write increments the entry's `generation`."""


class OsConfigfsOps:
    """configfs-tsm through the operating system's file calls."""

    def mkdir(self, path: Path) -> None:
        """Create a report entry."""
        path.mkdir()

    def rmdir(self, path: Path) -> None:
        """Remove a report entry."""
        path.rmdir()

    def read(self, path: Path) -> bytes:
        """Read an attribute."""
        return path.read_bytes()

    def write(self, path: Path, data: bytes) -> None:
        """Write an attribute."""
        path.write_bytes(data)


class ConfigfsTsmProvider:
    """Evidence from the Linux configfs-tsm report interface (TDX quotes, SEV-SNP reports).

    Each request uses a report entry of its own: mkdir, write `inblob` (and `privlevel`), read
    `outblob`, `provider` (and for SEV-SNP `auxblob`), rmdir. If `generation` is not what our
    own writes make it, another writer raced us and the report may be for its input: the
    request is retried on a new entry, up to `attempts` times.
    """

    def __init__(
        self,
        root: Path = CONFIGFS_TSM_ROOT,
        event_log_path: Path | None = CCEL_PATH,
        *,
        privlevel: int | None = None,
        attempts: int = DEFAULT_ATTEMPTS,
        ops: ConfigfsOps | None = None,
    ) -> None:
        if privlevel is not None and not 0 <= privlevel <= MAX_PRIVLEVEL:
            raise ValueError(f"privlevel must be 0..{MAX_PRIVLEVEL}, got {privlevel}")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.root = root
        self.event_log_path = event_log_path
        self.privlevel = privlevel
        self.attempts = attempts
        self._ops = ops or OsConfigfsOps()
        self._tee: Tee | None = None

    @property
    def tee(self) -> Tee:
        """The TEE the kernel's TSM provider reports for (asked once, on first use)."""
        if self._tee is None:
            with self._entry() as entry:
                self._tee = _tee_of(self._read(entry / "provider"))
        return self._tee

    @property
    def simulated(self) -> bool:
        """Never: this is the TEE's own evidence."""
        return False

    def evidence(self, report_data: bytes) -> Evidence:
        """A report of this TEE over `report_data`, with the CCEL when the kernel exports one."""
        if len(report_data) > REPORT_DATA_SIZE:
            raise ValueError(f"report data is at most {REPORT_DATA_SIZE} bytes, got {len(report_data)}")
        for _ in range(self.attempts):
            evidence = self._attempt(report_data)
            if evidence is not None:
                return evidence
        raise EvidenceProviderError(
            Code.PROVIDER_GENERATION_CONFLICT,
            f"another writer changed the report entry in each of {self.attempts} attempts",
            where=str(self.root),
        )

    def _attempt(self, report_data: bytes) -> Evidence | None:
        """One report on a fresh entry; None if its generation shows a concurrent write."""
        with self._entry() as entry:
            expected = self._generation(entry)
            self._write(entry / "inblob", report_data)
            expected += 1
            if self.privlevel is not None:
                self._write(entry / "privlevel", str(self.privlevel).encode())
                expected += 1
            outblob = self._read(entry / "outblob")
            tee = _tee_of(self._read(entry / "provider"))
            auxblob = self._read_optional(entry / "auxblob") if tee == "snp" else None
            if self._generation(entry) != expected:
                return None
        certificates = _snp_certificates(auxblob) if auxblob else ()
        return Evidence(tee, outblob, self._event_log(), certificates=certificates)

    @contextmanager
    def _entry(self) -> Iterator[Path]:
        """A report entry of our own, removed afterwards."""
        entry = self.root / f"teeplane-{uuid.uuid4().hex}"
        if not self.root.is_dir():
            raise EvidenceProviderError(
                Code.PROVIDER_UNAVAILABLE,
                f"no configfs-tsm report directory at {self.root} (is configfs mounted and a TEE guest driver loaded?)",
                where=str(self.root),
            )
        _io(lambda: self._ops.mkdir(entry), "create report entry", entry)
        try:
            yield entry
        finally:
            _io(lambda: self._ops.rmdir(entry), "remove report entry", entry)

    def _read(self, path: Path) -> bytes:
        return _io(lambda: self._ops.read(path), "read", path)

    def _read_optional(self, path: Path) -> bytes | None:
        """An attribute not every TSM has (`auxblob`): None when it is absent."""
        try:
            return self._ops.read(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _unavailable("read", path, exc) from exc

    def _write(self, path: Path, data: bytes) -> None:
        _io(lambda: self._ops.write(path, data), "write", path)

    def _generation(self, entry: Path) -> int:
        raw = self._read(entry / "generation").strip()
        if not raw.isdigit():
            raise EvidenceProviderError(
                Code.PROVIDER_UNAVAILABLE, f"generation is not a number: {raw[:32]!r}", where=str(entry / "generation")
            )
        return int(raw)

    def _event_log(self) -> bytes | None:
        path = self.event_log_path
        if path is None or not path.exists():
            return None
        return _io(path.read_bytes, "read event log", path)


@dataclass(frozen=True, slots=True, eq=False)
class SimulatedTdxProvider:
    """Quotes of a simulated TD, its CCEL, and the simulation's signed collateral bundle."""

    td: SimulatedTd
    collateral: bytes

    @property
    def tee(self) -> Tee:
        """Always "tdx"."""
        return "tdx"

    @property
    def simulated(self) -> bool:
        """Always: the quotes verify only under the simulation root."""
        return True

    def evidence(self, report_data: bytes) -> Evidence:
        """A v4 quote of the TD's registers over `report_data`, with the log of its extensions."""
        return Evidence(
            "tdx",
            self.td.quote(report_data),
            write_event_log(self.td.events),
            simulated=True,
            collateral=self.collateral,
        )


def _io(call: Callable[[], _T], what: str, path: Path) -> _T:
    """Run a file operation; an OSError becomes `provider.unavailable` naming the file."""
    try:
        return call()
    except OSError as exc:
        raise _unavailable(what, path, exc) from exc


def _unavailable(what: str, path: Path, exc: OSError) -> EvidenceProviderError:
    return EvidenceProviderError(
        Code.PROVIDER_UNAVAILABLE, f"cannot {what} {path}: {exc.strerror or exc}", where=str(path)
    )


def _tee_of(provider: bytes) -> Tee:
    name = provider.decode(errors="replace").strip()
    tee = TSM_PROVIDERS.get(name)
    if tee is None:
        raise EvidenceProviderError(
            Code.PROVIDER_UNSUPPORTED,
            f"configfs-tsm provider {name!r} is not one of {', '.join(TSM_PROVIDERS)}",
            where="provider",
        )
    return tee


def _snp_certificates(table: bytes) -> tuple[bytes, ...]:
    """The VCEK/VLEK, ASK and ARK of a SEV-SNP certificate table, leaf first.

    The table is a list of (GUID, offset, length) entries ending in an all-zero entry; offsets
    count from the table's start. Certificates of other GUIDs are left out.
    """
    reader = Reader(table, "auxblob", Code.SNP_CERTIFICATE_MALFORMED)
    found: dict[uuid.UUID, bytes] = {}
    while True:
        guid = uuid.UUID(bytes=reader.bytes(16, "certificate GUID"))
        offset = reader.u32("certificate offset")
        length = reader.u32("certificate length")
        if guid.int == 0:
            break
        if guid in _SNP_CERT_GUIDS:
            found[guid] = Reader(table, "auxblob", Code.SNP_CERTIFICATE_MALFORMED, offset).bytes(length, str(guid))
    return tuple(found[guid] for guid in _SNP_CERT_GUIDS if guid in found)
