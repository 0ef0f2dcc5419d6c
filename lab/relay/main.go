// sylab-relay joins the lab's network namespaces where no route can: it
// listens in one namespace and dials its peers in another, from one process
// (a socket belongs to the namespace of the thread that created it).
//
//	sylab-relay tcp LISTEN_NETNS LISTEN_ADDR DIAL_NETNS DIAL_ADDR
//	    every connection accepted on LISTEN_ADDR is spliced to DIAL_ADDR
//	    (the nodes reach the host-loopback kube-apiserver this way)
//	sylab-relay connect UNIX_SOCKET DIAL_NETNS
//	    an HTTP CONNECT proxy on a unix socket that dials its targets in
//	    DIAL_NETNS: kube-apiserver's egress selector for the "cluster"
//	    network (webhooks, kubelets, pod proxy) points at it
//
// A namespace is a path such as /run/netns/NAME, or "-" for the relay's own.
// "ready" is printed once the listener is up; errors per connection go to
// stderr and never stop the relay.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"syscall"
	"time"
)

const sysSetns = 308 // x86_64; CLONE_NEWNET as nstype

// inNetns runs f on a thread that is in the namespace at path ("-": this one).
func inNetns(path string, f func() error) error {
	if path == "-" {
		return f()
	}
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", path, err)
	}
	ferr := f()
	if err := setns(self); err != nil {
		// The thread stays in the other namespace: keep it locked so that
		// Go discards it when this goroutine ends.
		return fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(f *os.File) error {
	if _, _, e := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
		return e
	}
	return nil
}

func dial(netns, addr string) (c net.Conn, err error) {
	err = inNetns(netns, func() error {
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	})
	return c, err
}

func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	half := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go half(a, b)
	go half(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

func serve(l net.Listener, handle func(net.Conn)) {
	fmt.Println("ready")
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintf(os.Stderr, "sylab-relay: accept: %v\n", err)
			os.Exit(1)
		}
		go handle(c)
	}
}

func tcp(listenNetns, listenAddr, dialNetns, dialAddr string) error {
	var l net.Listener
	err := inNetns(listenNetns, func() (err error) {
		l, err = net.Listen("tcp", listenAddr)
		return err
	})
	if err != nil {
		return err
	}
	serve(l, func(c net.Conn) {
		up, err := dial(dialNetns, dialAddr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sylab-relay: %s → %s: %v\n", c.RemoteAddr(), dialAddr, err)
			c.Close()
			return
		}
		splice(c, up)
	})
	return nil
}

// connectProxy answers one CONNECT per connection, then splices.
func connectProxy(sock, dialNetns string) error {
	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	serve(l, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil || req.Method != http.MethodConnect {
			fmt.Fprintf(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
			c.Close()
			return
		}
		up, err := dial(dialNetns, req.Host)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sylab-relay: CONNECT %s: %v\n", req.Host, err)
			fmt.Fprintf(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
			c.Close()
			return
		}
		fmt.Fprintf(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			if _, err := up.Write(b); err != nil {
				c.Close()
				up.Close()
				return
			}
		}
		splice(c, up)
	})
	return nil
}

func main() {
	var err error
	switch {
	case len(os.Args) == 6 && os.Args[1] == "tcp":
		err = tcp(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
	case len(os.Args) == 4 && os.Args[1] == "connect":
		err = connectProxy(os.Args[2], os.Args[3])
	default:
		fmt.Fprintln(os.Stderr, "usage: sylab-relay tcp LISTEN_NETNS LISTEN_ADDR DIAL_NETNS DIAL_ADDR | connect UNIX_SOCKET DIAL_NETNS")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sylab-relay: %v\n", err)
		os.Exit(1)
	}
}
