// Command kube-controller-manager is Kubernetes' own kube-controller-manager, built from k8s.io/kubernetes for Kiln's tests.
package main

import (
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"

	_ "kiln/kube-bins/internal/pdeath"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
