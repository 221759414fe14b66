"""The Evidence Provision Service and evidence providers (configfs-tsm, simulated TDX)."""
