"""The simulated TDX module: a software TD whose quotes verify only under the simulation root."""
