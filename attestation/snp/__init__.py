"""AMD SEV-SNP attestation reports and their certificate chain."""
