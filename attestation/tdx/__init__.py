"""Intel TDX: quote parsing, DCAP collateral, appraisal and the simulated TDX module."""
