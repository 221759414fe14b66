"""Evidence formats and their verification: TDX quotes with DCAP collateral, SEV-SNP reports,
CCEL event logs, and the simulated TDX module."""
