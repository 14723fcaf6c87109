package render_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// isoLB is one HAProxy (master and worker) with its renderer.
type isoLB struct {
	version, bin        string
	httpPort, httpsPort int
	dir                 string // gen-N directories and the "cur" link HAProxy's -f goes through
	gen                 int
	cli                 *reload.MasterCLI
	inc                 *haproxycfg.Incremental
	prev                *render.Model
	client              *http.Client
	logs                *isoTail
	// bOnly renders B alone, changed as B is: the same change without
	// A, for the time bounds (bOnlyDir holds its files).
	bOnly    *haproxycfg.Incremental
	bOnlyDir string
}

func startIsoLB(t *testing.T, version, bin string, tmpl *template.Template) *isoLB {
	t.Helper()
	dir, err := os.MkdirTemp("", "iso-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	lb := &isoLB{version: version, bin: bin, httpPort: freePort(t), httpsPort: freePort(t), dir: dir, logs: new(isoTail)}
	lb.inc = haproxycfg.NewIncremental(haproxycfg.Config{Template: tmpl, HTTPBind: "127.0.0.1:" + strconv.Itoa(lb.httpPort),
		HTTPSBind: "127.0.0.1:" + strconv.Itoa(lb.httpsPort)})
	lb.cli = reload.NewMasterCLI(filepath.Join(dir, "master.sock"))
	lb.cli.ConfigDir = filepath.Join(dir, "cur")
	lb.cli.ReloadTimeout = 30 * time.Second
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		port := lb.httpPort
		if strings.HasSuffix(addr, ":443") {
			port = lb.httpsPort
		}
		return (&net.Dialer{}).DialContext(ctx, "tcp", "127.0.0.1:"+strconv.Itoa(port))
	}
	lb.client = &http.Client{Timeout: 10 * time.Second,
		Transport:     &http.Transport{DialContext: dial, DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return lb
}

// render renders in with the LB's incremental renderer and writes a new
// generation; the time is the render's alone.
func (lb *isoLB) render(t *testing.T, in render.Inputs, opts render.Options) (*render.Model, string, time.Duration) {
	t.Helper()
	opts.Previous = lb.prev
	start := time.Now()
	m, out, err := lb.inc.Render(in, opts)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("haproxy %s: render: %v", lb.version, err)
	}
	lb.prev = m
	lb.gen++
	dir := filepath.Join(lb.dir, "gen-"+strconv.Itoa(lb.gen))
	writeFiles(t, dir, out)
	return m, dir, took
}

// serve points "cur" at the generation dir and starts HAProxy on it, or
// reloads it.
func (lb *isoLB) serve(t *testing.T, dir string) error {
	t.Helper()
	tmp := filepath.Join(lb.dir, "cur.tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(dir), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(lb.dir, "cur")); err != nil {
		t.Fatal(err)
	}
	if old := filepath.Join(lb.dir, "gen-"+strconv.Itoa(lb.gen-2)); lb.gen > 2 {
		os.RemoveAll(old)
	}
	if lb.gen == 1 {
		cmd := exec.Command(lb.bin, "-W", "-S", lb.cli.Socket, "-f", filepath.Join(lb.dir, "cur", haproxycfg.ConfigFile))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdout, cmd.Stderr = lb.logs, lb.logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		})
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(lb.httpPort)); err == nil {
				c.Close()
				return nil
			}
			if time.Now().After(deadline) {
				t.Fatalf("haproxy %s did not listen: %s", lb.version, lb.logs.String())
			}
		}
	}
	_, err := lb.cli.Reload(context.Background())
	return err
}

func (lb *isoLB) ask(r isoReq) isoAnswer {
	scheme := "http"
	if r.https {
		scheme = "https"
	}
	var body io.Reader
	if r.body > 0 {
		body = strings.NewReader(strings.Repeat("x", r.body))
	}
	req, err := http.NewRequest(r.method, scheme+"://"+r.sni+r.path, body)
	if err != nil {
		return isoAnswer{Err: err.Error()}
	}
	req.Host = r.host
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := lb.client.Do(req)
	if err != nil {
		return isoAnswer{Err: err.Error()}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	a := isoAnswer{Status: resp.StatusCode, Endpoint: resp.Header.Get("X-Endpoint"), SeenPath: resp.Header.Get("X-Seen-Path"),
		Location: resp.Header.Get("Location"), WWWAuthenticate: resp.Header.Get("WWW-Authenticate"),
		AllowOrigin: resp.Header.Get("Access-Control-Allow-Origin"), AllowMethods: resp.Header.Get("Access-Control-Allow-Methods"),
		HSTS: resp.Header.Get("Strict-Transport-Security")}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		c := resp.TLS.PeerCertificates[0]
		a.Cert = c.Subject.CommonName + "/" + strings.Join(c.Subject.Organization, ",")
	}
	return a
}

// askAll sends every request, a few at a time.
func (lb *isoLB) askAll(reqs []isoReq) []isoAnswer {
	out := make([]isoAnswer, len(reqs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, r := range reqs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			out[i] = lb.ask(r)
		}()
	}
	wg.Wait()
	return out
}
