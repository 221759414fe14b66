"""The simulated platform's fixed identity: what its PCK certificate, collateral and quotes agree on.

The values imitate a current Intel TDX platform (TDX module major version 1, the TD Quoting
Enclave's product ID and attributes) so that the appraisal takes the same paths as for real
hardware and finds the platform UpToDate. Signer measurements are TEEPlane's own, not Intel's.
"""

from __future__ import annotations

import hashlib

#: Intel's QE vendor ID, which every DCAP quote header carries.
QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")

# PCK certificate facts (SGX extensions) and the matching TCB Info platform level.
FMSPC = bytes.fromhex("5111A7ED0000")
PCE_ID = bytes.fromhex("0000")
SGX_TCB_COMPONENTS = (2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0)
CPUSVN = bytes(SGX_TCB_COMPONENTS)
PCESVN = 11
SGX_TYPE_STANDARD = 0

# The TDX module: TEE_TCB_SVN = module SVN, module major version, late microcode SVN, zeros.
TEE_TCB_SVN = bytes([5, 1, 3]) + bytes(13)
MRSEAM = hashlib.sha384(b"TEEPlane simulated TDX module").digest()
MRSIGNERSEAM = bytes(48)
SEAM_ATTRIBUTES = bytes(8)

# The TD Quoting Enclave (its report is the QE report in every quote).
QE_MRENCLAVE = hashlib.sha256(b"TEEPlane simulated TD quoting enclave").digest()
QE_MRSIGNER = hashlib.sha256(b"TEEPlane simulated TD quoting enclave signer").digest()
QE_ATTRIBUTES = bytes.fromhex("1500000000000000e700000000000000")
QE_MISCSELECT = 0
QE_ISVPRODID = 2
QE_ISVSVN = 4
#: The QE authentication data real TD QEs send: bytes 0x00..0x1f.
QE_AUTH_DATA = bytes(range(32))

# Collateral bookkeeping.
TCB_DATE = "2024-03-13T00:00:00Z"
TCB_EVALUATION_DATA_NUMBER = 17
