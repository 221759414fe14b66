"""TEEPlane: a confidential-computing control plane for Kubernetes.

This package is the shared kernel: the CLI root, typed errors and small helpers used by
`teeplane.attestation`, `teeplane.baseline`, `teeplane.tks` and `teeplane.operator`.
"""

__version__ = "0.1.0"
