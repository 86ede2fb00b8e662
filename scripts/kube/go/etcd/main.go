// Command etcd is etcd's own main (etcdmain.Main), built for Kiln's tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"

	_ "kiln/etcd/internal/pdeath"
)

func main() {
	etcdmain.Main(os.Args)
}
