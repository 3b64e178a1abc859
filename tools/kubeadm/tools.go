//go:build tools

// Package tools pins kubeadm for the kind node image (tools/kind/node-image.sh).
// Its own module: kubeadm needs modules tools/k8s does not, and a change to
// tools/k8s/go.sum would rebuild every binary built from that module.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kubeadm"
)
