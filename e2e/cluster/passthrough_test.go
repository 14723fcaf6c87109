package cluster

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
)

// startTLSEcho is an endpoint terminating TLS itself with a certificate
// for host whose organization is org, answering "tls=<org>".
func startTLSEcho(t *testing.T, addr, host, org string) {
	t.Helper()
	crt, key := testenv.SelfSigned(t, host, org)
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "tls="+org) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// tlsGet sends GET / over TLS with SNI host to HAProxy's HTTPS port and
// returns the certificate's organization and the answer's body.
func tlsGet(port int, host string) (org, body string, err error) {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 5*time.Second)
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err := tc.Handshake(); err != nil {
		return "", "", err
	}
	if o := tc.ConnectionState().PeerCertificates[0].Subject.Organization; len(o) > 0 {
		org = o[0]
	}
	if _, err := io.WriteString(tc, "GET / HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		return org, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return org, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return org, string(b), nil
}

// TLS passthrough through the Kubernetes source, on 2.6 and 3.0: an
// Ingress with ssl-passthrough gets its endpoint's own certificate on the
// HTTPS port while another host there is terminated; its endpoint moving
// (an EndpointSlice update) is followed without a reload, like any
// backend's; deleting the Ingress terminates the host again.
func TestClusterTLSPassthrough(t *testing.T) {
	for version, bin := range map[string]string{"2.6": testenv.HAProxy26(t), "3.0": testenv.HAProxy30(t)} {
		t.Run("haproxy-"+version, func(t *testing.T) {
			e := start(t, bin)
			startTLSEcho(t, kube.BackendIP(0)+":8443", "pass.test", "endpoint-a")
			startTLSEcho(t, kube.BackendIP(1)+":8443", "pass.test", "endpoint-b")
			kube.StartEcho(t, "web", kube.BackendIP(2)+":8080")
			e.service("web", 8080, kube.BackendIP(2))
			e.create(ingress("web", "web.test", "/", "web"))
			e.service("secure", 8443, kube.BackendIP(0))
			pass := ingress("pass", "pass.test", "/", "secure")
			pass.Annotations = map[string]string{"haproxy-sidecar.io/ssl-passthrough": "true"}
			e.create(pass)
			port := e.sidecar.HTTPSPort
			expectTLS := func(host, wantOrg, wantBody string) {
				t.Helper()
				e.sidecar.Eventually(20*time.Second, fmt.Sprintf("https://%s -> %s %s", host, wantOrg, wantBody), func() error {
					org, body, err := tlsGet(port, host)
					if err != nil {
						return err
					}
					if org != wantOrg || body != wantBody {
						return fmt.Errorf("certificate of %q, body %q", org, body)
					}
					return nil
				})
			}
			expectTLS("pass.test", "endpoint-a", "tls=endpoint-a")
			expectTLS("web.test", "haproxy-sidecar", "service=web\n")

			// The endpoint moves: a runtime change, as for any backend.
			reloads := e.sidecar.Reloads()
			ctx := e.ctx()
			es, err := e.client.DiscoveryV1().EndpointSlices(e.ns).Get(ctx, "secure-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			es.Endpoints[0].Addresses = []string{kube.BackendIP(1)}
			if _, err := e.client.DiscoveryV1().EndpointSlices(e.ns).Update(ctx, es, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			expectTLS("pass.test", "endpoint-b", "tls=endpoint-b")
			if n := e.sidecar.Reloads(); n != reloads {
				t.Errorf("the endpoint change reloaded HAProxy (%d reloads, %d before)", n, reloads)
			}

			// Without the Ingress, the host is terminated as any other.
			if err := e.client.NetworkingV1().Ingresses(e.ns).Delete(ctx, "pass", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			e.sidecar.Eventually(20*time.Second, "pass.test terminated", func() error {
				org, _, err := tlsGet(port, "pass.test")
				if err != nil {
					return err
				}
				if org != "haproxy-sidecar" {
					return fmt.Errorf("certificate of %q", org)
				}
				return nil
			})
			expectTLS("web.test", "haproxy-sidecar", "service=web\n")
		})
	}
}
