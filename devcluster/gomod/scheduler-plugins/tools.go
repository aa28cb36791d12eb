//go:build tools

// Package tools pins the command package that devcluster/build.sh compiles: the scheduler with the
// scheduler-plugins (Coscheduling among them), run as a second scheduler for gang scheduling.
package tools

import (
	_ "sigs.k8s.io/scheduler-plugins/cmd/scheduler"
)
