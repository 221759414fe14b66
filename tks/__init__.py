"""Trusted Key Service: key server, attestation-gated key broker, etcd clustering."""
