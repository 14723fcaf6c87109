package cluster

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/controller"
	"github.com/haproxy-sidecar/haproxy-sidecar/e2e/kube"
	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/reload"
)

// Certificates through HAProxy's runtime API, under HTTPS load on a
// served TLS host: a new TLS host (its Secret, then its Ingress), 20
// rotations of a Secret, and a deleted Secret (its host then gets the
// default certificate), each served by SNI with no reload and no failed
// request, and /history saying "runtime" for every pass. The files on
// disk are kept in step: a reload HAProxy's master does afterwards serves
// the same certificates. The time from the API write's answer to the new
// certificate served is logged (BENCHMARKS.md, certificates).
func TestClusterCertificatesAtRunTime(t *testing.T) {
	const rotations = 20
	for version, bin := range map[string]string{"2.6": testenv.HAProxy26(t), "3.0": testenv.HAProxy30(t)} {
		t.Run("haproxy-"+version, func(t *testing.T) {
			e := start(t, bin)
			kube.StartEcho(t, "web", kube.BackendIP(0)+":8080")
			e.service("web", 8080, kube.BackendIP(0))
			ing := ingress("web", "secure.test", "/", "web")
			ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"secure.test"}, SecretName: "secure-tls"}}
			e.create(tlsSecret(t, "secure-tls", "secure.test", "first"))
			e.create(ing)
			e.expectCert("secure.test", "first")
			e.sidecar.Eventually(20*time.Second, "the first reload done", func() error {
				st, err := e.sidecar.TryProcs()
				if err == nil && len(st.OldWorkers) > 0 {
					return fmt.Errorf("%d old workers", len(st.OldWorkers))
				}
				return err
			})
			// Every pass of the set-up recorded (a reload's record lands
			// after HAProxy took it), before counting reloads.
			firstPass := e.settledPass()
			before := e.sidecar.Procs()

			// HTTPS load on secure.test throughout.
			var ok, failed atomic.Int64
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := e.httpsGet("secure.test"); err != nil {
						failed.Add(1)
						t.Logf("request failed: %v", err)
					} else {
						ok.Add(1)
					}
				}
			}()

			// A new TLS host: the Secret first, as cert-manager writes it,
			// then the Ingress naming it.
			e.create(tlsSecret(t, "new-tls", "new.test", "new"))
			newIng := ingress("new", "new.test", "/", "web")
			newIng.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"new.test"}, SecretName: "new-tls"}}
			e.create(newIng)
			newHost := e.timeToCert("new.test", "new")

			secrets := e.client.CoreV1().Secrets(e.ns)
			took := make([]time.Duration, 0, rotations)
			for i := range rotations {
				marker := "rotated-" + strconv.Itoa(i)
				sec, err := secrets.Get(e.ctx(), "secure-tls", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				sec.Data = tlsSecret(t, "secure-tls", "secure.test", marker).Data
				if _, err := secrets.Update(e.ctx(), sec, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				took = append(took, e.timeToCert("secure.test", marker))
			}
			if err := secrets.Delete(e.ctx(), "new-tls", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			e.expectCert("new.test", "haproxy-sidecar")
			close(stop)
			<-done

			after := e.sidecar.Procs()
			slices.Sort(took)
			t.Logf("HAProxy %s: a new TLS host served %v after its Ingress's write; %d rotations: write to served p50 %v, p99 %v, max %v; %d HTTPS requests, %d failed",
				version, newHost.Round(time.Microsecond), rotations, took[rotations/2].Round(time.Microsecond),
				took[rotations*99/100].Round(time.Microsecond), took[rotations-1].Round(time.Microsecond), ok.Load(), failed.Load())
			if failed.Load() > 0 || ok.Load() == 0 {
				t.Errorf("%d HTTPS requests failed, %d succeeded", failed.Load(), ok.Load())
			}
			if after.Reloads != before.Reloads || after.CurrentWorker() != before.CurrentWorker() {
				t.Errorf("reloads %d -> %d, worker %d -> %d: a certificate change reloaded HAProxy", before.Reloads, after.Reloads, before.CurrentWorker(), after.CurrentWorker())
			}
			certPasses := 0
			for _, p := range e.sidecar.History() {
				if p.ID <= firstPass {
					continue
				}
				if p.Outcome != controller.OutcomeRuntime && p.Outcome != controller.OutcomeUnchanged {
					t.Errorf("pass %d: outcome %s (%s %s), want runtime", p.ID, p.Outcome, p.ReloadCause, p.ReloadReason)
				}
				for _, c := range p.Commands {
					if strings.HasPrefix(c, "set ssl cert ") {
						certPasses++
					}
				}
			}
			if certPasses < rotations+1 {
				t.Errorf("%d passes in /history sent a certificate, want %d at least", certPasses, rotations+1)
			}

			// What is on disk serves the same: HAProxy reloaded by its
			// master, from the files alone.
			last := "rotated-" + strconv.Itoa(rotations-1)
			e.sidecar.Eventually(10*time.Second, "the last generation written", func() error {
				current := filepath.Join(e.sidecar.ConfigDir, "current")
				list, err := os.ReadFile(filepath.Join(current, "crt-list.txt"))
				if err != nil {
					return err
				}
				if strings.Contains(string(list), "new-tls") {
					return fmt.Errorf("crt-list.txt still lists the deleted Secret's certificate")
				}
				pemData, err := os.ReadFile(filepath.Join(current, "certs", e.ns+"_secure-tls.pem"))
				if err != nil {
					return err
				}
				block, _ := pem.Decode(pemData)
				if block == nil {
					return fmt.Errorf("no PEM block in the certificate file")
				}
				cert, err := x509.ParseCertificate(block.Bytes)
				if err != nil || len(cert.Subject.Organization) == 0 || cert.Subject.Organization[0] != last {
					return fmt.Errorf("the certificate file is not the last rotation's (%v)", err)
				}
				return nil
			})
			if _, err := reload.NewMasterCLI(e.sidecar.Socket).Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			e.expectCert("secure.test", last)
			e.expectCert("new.test", "haproxy-sidecar")
		})
	}
}

// timeToCert is how long after now host is served with marker's
// certificate (polled every millisecond, within 10 s).
func (e *env) timeToCert(host, marker string) time.Duration {
	e.t.Helper()
	start := time.Now()
	for {
		got, err := e.httpsGet(host, true)
		if err == nil && got == marker {
			return time.Since(start)
		}
		if time.Since(start) > 10*time.Second {
			e.t.Fatalf("%s: certificate %q, want %q, after 10 s (%v)", host, got, marker, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// settledPass is the newest pass in /history once none has come for
// half a second.
func (e *env) settledPass() int64 {
	e.t.Helper()
	last, since := e.newestPass(), time.Now()
	for time.Since(since) < 500*time.Millisecond {
		time.Sleep(50 * time.Millisecond)
		if n := e.newestPass(); n != last {
			last, since = n, time.Now()
		}
	}
	return last
}

func (e *env) newestPass() int64 {
	if h := e.sidecar.History(); len(h) > 0 {
		return h[0].ID
	}
	return 0
}
