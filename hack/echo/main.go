// Command echo is a tiny HTTP backend for the haproxy-sidecar demo
// (scripts/demo.sh). Every listener answers every request with one line
// naming itself, so a curl through HAProxy shows which Service it reached:
//
//	service=web path=/docs/intro host=web.demo.test
//
// Usage:
//
//	go run ./hack/echo --serve web=127.0.0.1:18081 --serve api=127.0.0.1:18082
//
// It listens on loopback addresses only, unless --allow-any is given, and
// stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serveFlag collects repeated --serve NAME=ADDR flags.
type serveFlag []listener

type listener struct{ name, addr string }

func (s *serveFlag) String() string {
	parts := make([]string, len(*s))
	for i, l := range *s {
		parts[i] = l.name + "=" + l.addr
	}
	return strings.Join(parts, ",")
}

func (s *serveFlag) Set(v string) error {
	name, addr, ok := strings.Cut(v, "=")
	if !ok || name == "" || addr == "" {
		return fmt.Errorf("want NAME=HOST:PORT, got %q", v)
	}
	*s = append(*s, listener{name: name, addr: addr})
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		serves   serveFlag
		allowAny bool
	)
	fs.Var(&serves, "serve", "NAME=HOST:PORT to answer on as service NAME (repeatable)")
	fs.BoolVar(&allowAny, "allow-any", false, "allow listening on non-loopback addresses")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: echo --serve NAME=127.0.0.1:PORT [--serve NAME=ADDR ...] [--allow-any]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(serves) == 0 || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	logger := log.New(stderr, "echo: ", log.LstdFlags)

	var servers []*http.Server
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, s := range serves {
		if err := checkAddr(s.addr, allowAny); err != nil {
			logger.Printf("--serve %s=%s: %v", s.name, s.addr, err)
			closeAll()
			return 2
		}
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			logger.Printf("--serve %s=%s: %v", s.name, s.addr, err)
			closeAll()
			return 1
		}
		lns = append(lns, ln)
		servers = append(servers, &http.Server{
			Handler:           handler(s.name),
			ReadHeaderTimeout: 10 * time.Second,
		})
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var wg sync.WaitGroup
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		logger.Printf("service %s listening on %s", serves[i].name, lns[i].Addr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(lns[i]); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("service %s: %w", serves[i].name, err)
			}
		}()
	}

	code := 0
	select {
	case <-ctx.Done():
		logger.Printf("stopping")
	case err := <-errc:
		logger.Print(err)
		code = 1
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		srv.Shutdown(shutdownCtx)
	}
	wg.Wait()
	return code
}

// handler answers every request with the service name, path and Host.
func handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "service=%s path=%s host=%s\n", name, r.URL.Path, r.Host)
	})
}

// checkAddr refuses addresses that are not loopback unless allowAny: an
// empty host (":8080") or a name that resolves to anything else would
// expose the demo backends to the network.
func checkAddr(addr string, allowAny bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if allowAny {
		return nil
	}
	if host == "" {
		return errors.New("no host given (would listen on every address); use 127.0.0.1:PORT or --allow-any")
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("host %q is not an IP address; use 127.0.0.1:PORT or --allow-any", host)
	}
	if !ip.IsLoopback() {
		return fmt.Errorf("%s is not a loopback address; use --allow-any to listen on it", ip)
	}
	return nil
}
