"""Measurement calculators: what a TEE measures when it boots a build's artifacts.

Each module computes one kind of measurement from bytes, with the algorithm documented where it
is implemented: `tdvf` (MRTD), `authenticode` and `setup_header` (the kernel event of RTMR1),
`events` (the event rules of RTMR1..3), `initdata` (MRCONFIGID, HOST_DATA), `golden` (RTMR0 from
a recorded log), `tdx` (a whole TD boot), `snp` (the SEV-SNP launch digest).
"""
