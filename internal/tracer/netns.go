package tracer

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// netnsScoping says whether this kernel lets both sides name a socket's
// network namespace the same way, so DNS names can be scoped by it: the
// connection events read the netns cookie from the socket
// (sk->__sk_common.skc_net.net->net_cookie, common.bpf.h), the DNS hooks
// get it from bpf_get_netns_cookie (dns.bpf.h). Both exist from Linux 5.7
// on, with CONFIG_NET_NS; nil when they do, else why not.
func netnsScoping(kernel *btf.Spec) error {
	var net *btf.Struct
	if err := kernel.TypeByName("net", &net); err != nil {
		return fmt.Errorf("no struct net in the kernel's BTF: %w", err)
	}
	if !hasMember(net, "net_cookie") {
		return errors.New("this kernel's network namespaces have no cookie (Linux 5.7+)")
	}
	var sc *btf.Struct
	if err := kernel.TypeByName("sock_common", &sc); err != nil {
		return fmt.Errorf("no struct sock_common in the kernel's BTF: %w", err)
	}
	var possible *btf.Struct
	for _, m := range sc.Members {
		if m.Name == "skc_net" {
			possible, _ = btf.UnderlyingType(m.Type).(*btf.Struct)
		}
	}
	if possible == nil || !hasMember(possible, "net") {
		return errors.New("sockets do not record their network namespace (CONFIG_NET_NS is off)")
	}
	return nil
}

func hasMember(s *btf.Struct, name string) bool {
	for _, m := range s.Members {
		if m.Name == name {
			return true
		}
	}
	return false
}
