// A minimal container runtime built on the real libcni (Debian's golang-github-appc-cni-dev, the
// library inside containerd 1.6/1.7 and podman 4): it loads a network's conflist from a config
// directory as they do and runs ADD, CHECK or DEL of one attachment through it.
//
// Usage: libcni-client ADD|CHECK|DEL CONFDIR NETWORK CONTAINERID NETNS IFNAME
// CNI_PATH (plugin dirs), CNI_CACHE_DIR (libcni's result cache) and CNI_ARGS (K=V;K=V, passed as
// libcni's RuntimeConf.Args) come from the environment. Prints one JSON object on stdout:
// {"cniVersion": version libcni runs the list in, "result": ADD's result}; on failure the error on
// stderr and exit status 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 7 {
		fail("usage: libcni-client ADD|CHECK|DEL CONFDIR NETWORK CONTAINERID NETNS IFNAME")
	}
	command, confDir, network, containerID, netns, ifname := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6]
	list, err := libcni.LoadConfList(confDir, network)
	if err != nil {
		fail("loading network %q from %s: %v", network, confDir, err)
	}
	rt := &libcni.RuntimeConf{ContainerID: containerID, NetNS: netns, IfName: ifname}
	for _, pair := range strings.Split(os.Getenv("CNI_ARGS"), ";") {
		if kv := strings.SplitN(pair, "=", 2); len(kv) == 2 {
			rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
		}
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	ctx := context.Background()
	out := map[string]interface{}{"cniVersion": list.CNIVersion}
	switch command {
	case "ADD":
		var res types.Result
		if res, err = cni.AddNetworkList(ctx, list, rt); err == nil {
			out["result"] = res
		}
	case "CHECK":
		err = cni.CheckNetworkList(ctx, list, rt)
	case "DEL":
		err = cni.DelNetworkList(ctx, list, rt)
	default:
		fail("unknown command %q", command)
	}
	if err != nil {
		fail("%s: %v", command, err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("writing the answer: %v", err)
	}
}
