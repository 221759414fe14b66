"""The Remote Attestation Service: challenges, appraisal against reference values, attestation-result tokens."""
