"""The ConfidentialWorkload operator (Kopf): CRDs, reconciliation, admission webhooks."""
