package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/masqd/masqd/agent"
	"github.com/masqd/masqd/config"
)

// nodeReadTimeout bounds a command's reads of Nodes from the apiserver.
const nodeReadTimeout = 30 * time.Second

// discoverFlags are --discover-pod-cidrs and --kubeconfig of explain and status: the Nodes' pod ranges read
// from the apiserver, as the agent with --discover-pod-cidrs adds them.
type discoverFlags struct {
	on         bool
	kubeconfig string
}

func addDiscoverFlags(c *command) *discoverFlags {
	d := &discoverFlags{}
	c.fs.BoolVar(&d.on, "discover-pod-cidrs", false, "add every Node's spec.podCIDRs to the pod ranges, read from the apiserver, as the agent with this flag does")
	c.fs.StringVar(&d.kubeconfig, "kubeconfig", "", "kubeconfig `file` for --discover-pod-cidrs; default: the pod's ServiceAccount")
	return d
}

// read lists every Node and returns their pod ranges.
func (d *discoverFlags) read() ([]config.NodePodCIDR, error) {
	client, err := agent.NewKubeClient(d.kubeconfig, "masqd-cli/"+currentBuild().Version)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeReadTimeout)
	defer cancel()
	list, err := client.ListNodes(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var out []config.NodePodCIDR
	for i := range list.Items {
		pods, err := agent.ParsePodCIDRs(&list.Items[i])
		if err != nil {
			return nil, err
		}
		for _, p := range pods {
			out = append(out, config.NodePodCIDR{Node: list.Items[i].Name, Prefix: p})
		}
	}
	return out, nil
}

// readNodePodCIDRs reads the Node name's pod ranges from the apiserver (check --node).
func readNodePodCIDRs(name, kubeconfig string) ([]netip.Prefix, error) {
	client, err := agent.NewKubeClient(kubeconfig, "masqd-cli/"+currentBuild().Version)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeReadTimeout)
	defer cancel()
	n, err := client.GetNode(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	return agent.ParsePodCIDRs(n)
}
