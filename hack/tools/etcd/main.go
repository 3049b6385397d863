// Command etcd is etcd's own server entrypoint, built from the module version
// that k8s.io/kubernetes pins, so tests need no downloaded binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
