// The iproute2 batch lines the agent writes (src/host/ip.ts IpBatch), read into rtnetlink requests. Only the
// forms the agent's hot paths use are read; any other line makes the whole request unsupported, and the agent
// runs it through iproute2 as before.
package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
)

// errUnsupported: a line or command this reader does not know; nothing was done.
type errUnsupported struct{ what string }

func (e errUnsupported) Error() string { return "not read natively: " + e.what }

func unsupported(format string, a ...interface{}) error {
	return errUnsupported{fmt.Sprintf(format, a...)}
}

// splitWords splits a batch line as iproute2 does: at spaces, a word in double or single quotes kept whole.
func splitWords(line string) ([]string, error) {
	var words []string
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '"' || c == '\'':
			end := strings.IndexByte(line[i+1:], c)
			if end < 0 {
				return nil, unsupported("unterminated quote in %q", line)
			}
			words = append(words, line[i+1:i+1+end])
			i += end + 2
		default:
			end := strings.IndexAny(line[i:], " \t")
			if end < 0 {
				end = len(line) - i
			}
			words = append(words, line[i:i+end])
			i += end
		}
	}
	return words, nil
}

// ipOp is one line, ready to run in a namespace with a socket of that namespace.
type ipOp func(nl *rtnl) error

// openNetns opens a namespace by path, or by name under /var/run/netns (the caller closes the fd).
func openNetns(ref string) (int, error) {
	path := ref
	if !strings.Contains(ref, "/") {
		path = "/var/run/netns/" + ref
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("Cannot open network namespace \"%s\": %s", ref, capitalize(err.Error()))
	}
	return fd, nil
}

func parseMac(s string) ([]byte, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, unsupported("address %q", s)
	}
	return hw, nil
}

func parseU32(what, s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, unsupported("%s %q", what, s)
	}
	return uint32(v), nil
}

// device resolves a device name in the op's namespace, as iproute2's "Cannot find device" when absent.
func device(dev string) (int32, error) {
	idx, err := ifindex(dev)
	if err != nil {
		return 0, err
	}
	if idx == 0 {
		return 0, fmt.Errorf("Cannot find device \"%s\"", dev)
	}
	return idx, nil
}

// parseLine reads one batch line.
func parseLine(line string) (ipOp, error) {
	w, err := splitWords(line)
	if err != nil {
		return nil, err
	}
	if len(w) < 2 {
		return nil, unsupported("line %q", line)
	}
	switch w[0] + " " + w[1] {
	case "link add":
		return parseVethAdd(w[2:])
	case "link set":
		return parseLinkSet(w[2:])
	case "link del":
		return parseLinkDel(w[2:])
	case "addr add", "addr replace":
		return parseAddr(w[1], w[2:])
	case "route add", "route append", "route replace", "route del":
		return parseRoute(w[1], w[2:])
	}
	return nil, unsupported("line %q", line)
}

// linkEnd is what `name N [mtu M] [address A] [netns NS]` gives one end of a veth.
type linkEnd struct {
	name, netns string
	mtu         uint32
	mac         []byte
}

func (e *linkEnd) take(w []string, allowNetns bool) ([]string, error) {
	for len(w) >= 2 {
		var err error
		switch w[0] {
		case "name":
			e.name = w[1]
		case "mtu":
			e.mtu, err = parseU32("mtu", w[1])
		case "address":
			e.mac, err = parseMac(w[1])
		case "netns":
			if !allowNetns {
				return nil, unsupported("netns before type")
			}
			e.netns = w[1]
		default:
			return w, nil
		}
		if err != nil {
			return nil, err
		}
		w = w[2:]
	}
	return w, nil
}

func (e *linkEnd) attrs() []nlAttr {
	as := []nlAttr{attrStr(iflaIfname, e.name)}
	if e.mtu != 0 {
		as = append(as, attrU32(iflaMtu, e.mtu))
	}
	if e.mac != nil {
		as = append(as, attrBytes(iflaAddress, e.mac))
	}
	return as
}

// `link add name H [mtu M] [address A] type veth peer name P [mtu M] [address A] [netns NS]`
func parseVethAdd(w []string) (ipOp, error) {
	var host, peer linkEnd
	rest, err := host.take(w, false)
	if err != nil {
		return nil, err
	}
	if len(rest) < 4 || rest[0] != "type" || rest[1] != "veth" || rest[2] != "peer" {
		return nil, unsupported("link add %s", strings.Join(w, " "))
	}
	if rest, err = peer.take(rest[3:], true); err != nil {
		return nil, err
	}
	if len(rest) != 0 || host.name == "" || peer.name == "" {
		return nil, unsupported("link add %s", strings.Join(w, " "))
	}
	return func(nl *rtnl) error {
		peerAttrs := peer.attrs()
		if peer.netns != "" {
			fd, err := openNetns(peer.netns)
			if err != nil {
				return err
			}
			defer syscall.Close(fd)
			peerAttrs = append(peerAttrs, attrU32(iflaNetNsFd, uint32(fd)))
		}
		peerInfo := append(ifinfomsg(0, 0, 0), encodeAttrs(peerAttrs)...)
		linkinfo := attrNest(iflaLinkinfo, attrStr(iflaInfoKind, "veth"), attrNest(iflaInfoData, attrBytes(vethInfoPeer, peerInfo)))
		return nl.do(syscall.RTM_NEWLINK, syscall.NLM_F_CREATE|syscall.NLM_F_EXCL, ifinfomsg(0, 0, 0), append(host.attrs(), linkinfo)...)
	}, nil
}

// `link set dev D [mtu M] [address A] [up|down] [addrgenmode none]`
func parseLinkSet(w []string) (ipOp, error) {
	if len(w) < 3 || w[0] != "dev" {
		return nil, unsupported("link set %s", strings.Join(w, " "))
	}
	dev := w[1]
	var attrs []nlAttr
	var flags, change uint32
	for rest := w[2:]; len(rest) > 0; {
		switch {
		case rest[0] == "up" || rest[0] == "down":
			change |= syscall.IFF_UP
			if rest[0] == "up" {
				flags |= syscall.IFF_UP
			}
			rest = rest[1:]
		case rest[0] == "mtu" && len(rest) >= 2:
			v, err := parseU32("mtu", rest[1])
			if err != nil {
				return nil, err
			}
			attrs = append(attrs, attrU32(iflaMtu, v))
			rest = rest[2:]
		case rest[0] == "address" && len(rest) >= 2:
			mac, err := parseMac(rest[1])
			if err != nil {
				return nil, err
			}
			attrs = append(attrs, attrBytes(iflaAddress, mac))
			rest = rest[2:]
		case rest[0] == "addrgenmode" && len(rest) >= 2 && rest[1] == "none":
			// IN6_ADDR_GEN_MODE_NONE (1), under AF_INET6 of IFLA_AF_SPEC.
			attrs = append(attrs, attrNest(iflaAfSpec, attrNest(syscall.AF_INET6, attrBytes(iflaInet6AddrGenMd, []byte{1}))))
			rest = rest[2:]
		default:
			return nil, unsupported("link set %s", strings.Join(w, " "))
		}
	}
	return func(nl *rtnl) error {
		idx, err := device(dev)
		if err != nil {
			return err
		}
		return nl.do(syscall.RTM_NEWLINK, 0, ifinfomsg(idx, flags, change), attrs...)
	}, nil
}

// `link del dev D`
func parseLinkDel(w []string) (ipOp, error) {
	if len(w) != 2 || w[0] != "dev" {
		return nil, unsupported("link del %s", strings.Join(w, " "))
	}
	dev := w[1]
	return func(nl *rtnl) error {
		idx, err := device(dev)
		if err != nil {
			return err
		}
		return nl.do(syscall.RTM_DELLINK, 0, ifinfomsg(idx, 0, 0))
	}, nil
}

// family, address bytes and prefix length of a CIDR.
func parseCidr(s string) (uint8, net.IP, uint8, error) {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		return 0, nil, 0, unsupported("prefix %q", s)
	}
	ones, _ := n.Mask.Size()
	if v4 := ip.To4(); v4 != nil {
		return syscall.AF_INET, v4, uint8(ones), nil
	}
	return syscall.AF_INET6, ip.To16(), uint8(ones), nil
}

// The scope iproute2 gives an address it is not told one for.
func defaultAddrScope(ip net.IP) uint8 {
	switch {
	case ip.IsLoopback():
		return syscall.RT_SCOPE_HOST
	case ip.To4() == nil && ip.IsLinkLocalUnicast():
		return syscall.RT_SCOPE_LINK
	}
	return syscall.RT_SCOPE_UNIVERSE
}

// `addr add|replace CIDR dev D [nodad]`
func parseAddr(verb string, w []string) (ipOp, error) {
	if len(w) < 3 || w[1] != "dev" || len(w) > 4 || (len(w) == 4 && w[3] != "nodad") {
		return nil, unsupported("addr %s %s", verb, strings.Join(w, " "))
	}
	fam, ip, plen, err := parseCidr(w[0])
	if err != nil {
		return nil, err
	}
	dev := w[2]
	var ifaFlags uint8
	if len(w) == 4 {
		ifaFlags |= ifaFNodad
	}
	nlFlags := uint16(syscall.NLM_F_CREATE | syscall.NLM_F_EXCL)
	if verb == "replace" {
		nlFlags = syscall.NLM_F_CREATE | syscall.NLM_F_REPLACE
	}
	return func(nl *rtnl) error {
		idx, err := device(dev)
		if err != nil {
			return err
		}
		return nl.do(syscall.RTM_NEWADDR, nlFlags, ifaddrmsg(fam, plen, ifaFlags, defaultAddrScope(ip), idx), attrBytes(ifaLocal, ip), attrBytes(ifaAddress, ip))
	}, nil
}

var routeScopes = map[string]uint8{"global": 0, "universe": 0, "site": 200, "link": syscall.RT_SCOPE_LINK, "host": syscall.RT_SCOPE_HOST, "nowhere": syscall.RT_SCOPE_NOWHERE}
var routeProtocols = map[string]uint8{"kernel": 2, "boot": 3, "static": 4, "ra": 9, "dhcp": 16}
var routeTables = map[string]uint32{"default": 253, "main": 254, "local": 255}

func nameOrNumber(names map[string]uint8, what, s string) (uint8, error) {
	if v, ok := names[s]; ok {
		return v, nil
	}
	v, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, unsupported("%s %q", what, s)
	}
	return uint8(v), nil
}

// `route add|append|replace|del DST [via GW] [dev D] [src S] [metric N] [table T] [scope S] [proto P] [mtu M] [advmss A] [onlink]`
func parseRoute(verb string, w []string) (ipOp, error) {
	if len(w) == 0 {
		return nil, unsupported("route %s", verb)
	}
	del := verb == "del"
	var family, dstLen uint8
	var dst, gw, src net.IP
	if w[0] != "default" {
		f, ip, plen, err := parseCidr(w[0])
		if err != nil {
			return nil, err
		}
		family, dstLen, dst = f, plen, ip.Mask(net.CIDRMask(int(plen), len(ip)*8))
	}
	var dev string
	var metric, table, mtu, advmss uint32
	var haveMetric bool
	table = 254
	var scope, proto uint8
	haveScope, haveProto := false, false
	var rtFlags uint32
	for rest := w[1:]; len(rest) > 0; {
		if rest[0] == "onlink" {
			rtFlags |= rtnhFOnlink
			rest = rest[1:]
			continue
		}
		if len(rest) < 2 {
			return nil, unsupported("route %s %s", verb, strings.Join(w, " "))
		}
		var err error
		switch rest[0] {
		case "via":
			if gw = net.ParseIP(rest[1]); gw == nil {
				return nil, unsupported("gateway %q", rest[1])
			}
		case "src":
			if src = net.ParseIP(rest[1]); src == nil {
				return nil, unsupported("src %q", rest[1])
			}
		case "dev":
			dev = rest[1]
		case "metric":
			metric, err = parseU32("metric", rest[1])
			haveMetric = true
		case "table":
			if t, ok := routeTables[rest[1]]; ok {
				table = t
			} else {
				table, err = parseU32("table", rest[1])
			}
		case "scope":
			scope, err = nameOrNumber(routeScopes, "scope", rest[1])
			haveScope = true
		case "proto":
			proto, err = nameOrNumber(routeProtocols, "proto", rest[1])
			haveProto = true
		case "mtu":
			mtu, err = parseU32("mtu", rest[1])
		case "advmss":
			advmss, err = parseU32("advmss", rest[1])
		default:
			err = unsupported("route %s %s", verb, strings.Join(w, " "))
		}
		if err != nil {
			return nil, err
		}
		rest = rest[2:]
	}
	// The family: the destination's, else the gateway's, else IPv4 (as iproute2 without -4/-6).
	addrOf := func(ip net.IP) net.IP {
		if family == syscall.AF_INET {
			return ip.To4()
		}
		return ip.To16()
	}
	if family == 0 && gw != nil {
		family = syscall.AF_INET6
		if gw.To4() != nil {
			family = syscall.AF_INET
		}
	}
	if family == 0 {
		family = syscall.AF_INET
	}
	for _, ip := range []net.IP{gw, src} {
		if ip != nil && (ip.To4() != nil) != (family == syscall.AF_INET) {
			return nil, unsupported("route %s %s: mixed families", verb, strings.Join(w, " "))
		}
	}
	// As iproute2: a new route is unicast, protocol boot, scope universe (link for IPv4 without a gateway); a
	// deletion matches any of them.
	typ, rtScope := uint8(syscall.RTN_UNICAST), uint8(syscall.RT_SCOPE_UNIVERSE)
	rtProto := uint8(3)
	if del {
		typ, rtScope, rtProto = 0, syscall.RT_SCOPE_NOWHERE, 0
	} else if family == syscall.AF_INET && gw == nil {
		rtScope = syscall.RT_SCOPE_LINK
	}
	if haveScope {
		rtScope = scope
	}
	if haveProto {
		rtProto = proto
	}
	nlFlags := map[string]uint16{
		"add":     syscall.NLM_F_CREATE | syscall.NLM_F_EXCL,
		"append":  syscall.NLM_F_CREATE | syscall.NLM_F_APPEND,
		"replace": syscall.NLM_F_CREATE | syscall.NLM_F_REPLACE,
		"del":     0,
	}[verb]
	msgType := uint16(syscall.RTM_NEWROUTE)
	if del {
		msgType = syscall.RTM_DELROUTE
	}
	return func(nl *rtnl) error {
		var attrs []nlAttr
		if dst != nil && dstLen > 0 {
			attrs = append(attrs, attrBytes(rtaDst, addrOf(dst)))
		}
		if gw != nil {
			attrs = append(attrs, attrBytes(rtaGateway, addrOf(gw)))
		}
		if src != nil {
			attrs = append(attrs, attrBytes(rtaPrefsrc, addrOf(src)))
		}
		if dev != "" {
			idx, err := device(dev)
			if err != nil {
				return err
			}
			attrs = append(attrs, attrU32(rtaOif, uint32(idx)))
		}
		if haveMetric {
			attrs = append(attrs, attrU32(rtaPriority, metric))
		}
		var metrics []nlAttr
		if mtu != 0 {
			metrics = append(metrics, attrU32(rtaxMtu, mtu))
		}
		if advmss != 0 {
			metrics = append(metrics, attrU32(rtaxAdvmss, advmss))
		}
		if metrics != nil {
			attrs = append(attrs, attrNest(rtaMetrics, metrics...))
		}
		rtTable := uint8(0)
		if table < 256 {
			rtTable = uint8(table)
		}
		attrs = append(attrs, attrU32(rtaTable, table))
		return nl.do(msgType, nlFlags, rtmsg(family, dstLen, rtTable, rtProto, rtScope, typ, rtFlags), attrs...)
	}, nil
}
