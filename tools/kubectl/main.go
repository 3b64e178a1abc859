// Command kubectl is kubectl built from its library module alone, for the
// steps script (kind/steps.sh) the one-node cluster test runs. A module of its
// own: adding kubectl to tools/k8s would change that module's go.sum, whose
// hash stamps every Kubernetes binary, and rebuild them all.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
	os.Exit(0)
}
