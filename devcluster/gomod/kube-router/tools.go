//go:build tools

// Package tools pins the command package that devcluster/build.sh compiles: kube-router, run only as
// a NetworkPolicy controller (its firewall: iptables and ipsets) on the built-in cluster's real node.
package tools

import (
	_ "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router"
)
