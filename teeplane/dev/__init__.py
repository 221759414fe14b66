"""`teeplane dev`: the whole control plane (etcd, RAS, a 3-replica TKS, BGS and, when available, a
local Kubernetes with the operator) as processes on loopback under one state directory."""
