// The rtnetlink requests that the native ip steps make: one socket per namespace visited, one request at a
// time, each acknowledged. Errors read as iproute2 prints them, so callers see the same messages either way.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"unsafe"
)

const (
	iflaAddress        = 1
	iflaIfname         = 3
	iflaMtu            = 4
	iflaLinkinfo       = 18
	iflaAfSpec         = 26
	iflaNetNsFd        = 28
	iflaInfoKind       = 1
	iflaInfoData       = 2
	vethInfoPeer       = 1
	iflaInet6AddrGenMd = 8
	ifaAddress         = 1
	ifaLocal           = 2
	ifaFNodad          = 0x02
	rtaDst             = 1
	rtaOif             = 4
	rtaGateway         = 5
	rtaPriority        = 6
	rtaPrefsrc         = 7
	rtaMetrics         = 8
	rtaTable           = 15
	rtaxMtu            = 2
	rtaxAdvmss         = 8
	rtnhFOnlink        = 4
	netlinkCapAck      = 10
	netlinkExtAck      = 11
	nlmFCapped         = 0x100
	nlmFAckTlvs        = 0x200
	nlmsgerrAttrMsg    = 1
	solNetlink         = 270
	siocgifindex       = 0x8933
	siocethtool        = 0x8946
	ethtoolStxcsum     = 0x17
)

// nlAttr is one rtattr: a type and its payload, or nested attributes.
type nlAttr struct {
	typ    uint16
	data   []byte
	nested []nlAttr
}

func attrStr(t uint16, s string) nlAttr { return nlAttr{typ: t, data: append([]byte(s), 0)} }
func attrU32(t uint16, v uint32) nlAttr {
	b := make([]byte, 4)
	binary.LittleEndian.PutUint32(b, v)
	return nlAttr{typ: t, data: b}
}
func attrBytes(t uint16, b []byte) nlAttr   { return nlAttr{typ: t, data: b} }
func attrNest(t uint16, a ...nlAttr) nlAttr { return nlAttr{typ: t, nested: a} }

func align4(n int) int { return (n + 3) &^ 3 }

func (a nlAttr) encode() []byte {
	payload := a.data
	if a.nested != nil || a.data == nil {
		payload = encodeAttrs(a.nested)
	}
	b := make([]byte, align4(4+len(payload)))
	binary.LittleEndian.PutUint16(b[0:], uint16(4+len(payload)))
	binary.LittleEndian.PutUint16(b[2:], a.typ)
	copy(b[4:], payload)
	return b
}

func encodeAttrs(as []nlAttr) []byte {
	var out []byte
	for _, a := range as {
		out = append(out, a.encode()...)
	}
	return out
}

// ifinfomsg: family, pad, type, index, flags, change.
func ifinfomsg(index int32, flags, change uint32) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[4:], uint32(index))
	binary.LittleEndian.PutUint32(b[8:], flags)
	binary.LittleEndian.PutUint32(b[12:], change)
	return b
}

// ifaddrmsg: family, prefixlen, flags, scope, index.
func ifaddrmsg(family, prefixlen, flags, scope uint8, index int32) []byte {
	b := []byte{family, prefixlen, flags, scope, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[4:], uint32(index))
	return b
}

// rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
func rtmsg(family, dstLen, table, protocol, scope, typ uint8, flags uint32) []byte {
	b := []byte{family, dstLen, 0, 0, table, protocol, scope, typ, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[8:], flags)
	return b
}

// rtnl is a NETLINK_ROUTE socket in the namespace the calling thread was in when it was opened.
type rtnl struct {
	fd  int
	seq uint32
}

func openRtnl() (*rtnl, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// Extended acks carry the kernel's own message (iproute2 prints it as "Error: ..."); capped, they stay small.
	_ = syscall.SetsockoptInt(fd, solNetlink, netlinkExtAck, 1)
	_ = syscall.SetsockoptInt(fd, solNetlink, netlinkCapAck, 1)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	return &rtnl{fd: fd}, nil
}

func (r *rtnl) close() { syscall.Close(r.fd) }

// kernelError is a request the kernel refused: its errno and, when it said one, its message.
type kernelError struct {
	errno syscall.Errno
	msg   string
}

func (e *kernelError) Error() string {
	if e.msg != "" {
		return "Error: " + e.msg + "."
	}
	return "RTNETLINK answers: " + capitalize(e.errno.Error())
}

func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// do sends one request (header flags plus NLM_F_REQUEST|NLM_F_ACK) and waits for its acknowledgement.
func (r *rtnl) do(typ uint16, flags uint16, body []byte, attrs ...nlAttr) error {
	r.seq++
	payload := append(append([]byte{}, body...), encodeAttrs(attrs)...)
	msg := make([]byte, syscall.NLMSG_HDRLEN+len(payload))
	binary.LittleEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.LittleEndian.PutUint16(msg[4:], typ)
	binary.LittleEndian.PutUint16(msg[6:], flags|syscall.NLM_F_REQUEST|syscall.NLM_F_ACK)
	binary.LittleEndian.PutUint32(msg[8:], r.seq)
	copy(msg[syscall.NLMSG_HDRLEN:], payload)
	if err := syscall.Sendto(r.fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := syscall.Recvfrom(r.fd, buf, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("netlink reply: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != r.seq || m.Header.Type != syscall.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("netlink reply: short error message")
			}
			code := int32(binary.LittleEndian.Uint32(m.Data[0:4]))
			if code == 0 {
				return nil
			}
			return &kernelError{errno: syscall.Errno(-code), msg: extackMessage(m)}
		}
	}
}

// extackMessage is the kernel's NLMSGERR_ATTR_MSG, if it sent one.
func extackMessage(m syscall.NetlinkMessage) string {
	if m.Header.Flags&nlmFAckTlvs == 0 || len(m.Data) < 4+syscall.NLMSG_HDRLEN {
		return ""
	}
	off := 4 + syscall.NLMSG_HDRLEN
	if m.Header.Flags&nlmFCapped == 0 {
		// Not capped: the whole request follows the errno.
		off = 4 + int(binary.LittleEndian.Uint32(m.Data[4:8]))
	}
	for off+4 <= len(m.Data) {
		l := int(binary.LittleEndian.Uint16(m.Data[off:]))
		t := binary.LittleEndian.Uint16(m.Data[off+2:])
		if l < 4 || off+l > len(m.Data) {
			break
		}
		if t == nlmsgerrAttrMsg {
			s := m.Data[off+4 : off+l]
			for len(s) > 0 && s[len(s)-1] == 0 {
				s = s[:len(s)-1]
			}
			return string(s)
		}
		off += align4(l)
	}
	return ""
}

// ifreq as SIOCGIFINDEX and SIOCETHTOOL take it: the name, then a union (the index, or a pointer, kept typed
// so the collector sees it).
type ifreqIndex struct {
	name  [16]byte
	index int32
	_     [20]byte
}

type ifreqData struct {
	name [16]byte
	data unsafe.Pointer
	_    [16]byte
}

func ifname16(dev string) ([16]byte, error) {
	var b [16]byte
	if len(dev) == 0 || len(dev) >= len(b) {
		return b, fmt.Errorf("invalid device name %q", dev)
	}
	copy(b[:], dev)
	return b, nil
}

func ioctl(fd int, op uintptr, arg unsafe.Pointer) syscall.Errno {
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), op, uintptr(arg))
	return errno
}

func inetSocket() (int, error) {
	return syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
}

// ifindex looks a device up in the calling thread's namespace; 0 when it does not exist.
func ifindex(dev string) (int32, error) {
	name, err := ifname16(dev)
	if err != nil {
		return 0, err
	}
	fd, err := inetSocket()
	if err != nil {
		return 0, err
	}
	defer syscall.Close(fd)
	req := &ifreqIndex{name: name}
	if errno := ioctl(fd, siocgifindex, unsafe.Pointer(req)); errno != 0 {
		if errno == syscall.ENODEV {
			return 0, nil
		}
		return 0, errno
	}
	return req.index, nil
}

// txChecksumOff is `ethtool -K dev tx off`: every TX checksum feature of the device off (ETHTOOL_STXCSUM).
func txChecksumOff(dev string) error {
	name, err := ifname16(dev)
	if err != nil {
		return err
	}
	fd, err := inetSocket()
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	value := &struct{ cmd, data uint32 }{cmd: ethtoolStxcsum}
	req := &ifreqData{name: name, data: unsafe.Pointer(value)}
	if errno := ioctl(fd, siocethtool, unsafe.Pointer(req)); errno != 0 {
		return fmt.Errorf("ethtool -K %s tx off: %s", dev, capitalize(errno.Error()))
	}
	return nil
}
