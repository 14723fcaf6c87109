package haproxycfg

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
	"unsafe"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
	"github.com/haproxy-sidecar/haproxy-sidecar/templates"
)

// piecesCluster is n Ingresses (host app<i>.test, path "/" Prefix, or
// Exact for every third), each with its own Service and two endpoints.
func piecesCluster(n int) render.Inputs {
	cls := "haproxy"
	in := render.Inputs{IngressClasses: []*networkingv1.IngressClass{{ObjectMeta: metav1.ObjectMeta{Name: cls},
		Spec: networkingv1.IngressClassSpec{Controller: render.DefaultControllerName}}}}
	port, ready := int32(8080), true
	for i := range n {
		name := "app" + strconv.Itoa(i)
		pt := networkingv1.PathTypePrefix
		if i%3 == 0 {
			pt = networkingv1.PathTypeExact
		}
		in.Ingresses = append(in.Ingresses, &networkingv1.Ingress{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, CreationTimestamp: metav1.NewTime(time.Unix(int64(i), 0))},
			Spec: networkingv1.IngressSpec{IngressClassName: &cls, Rules: []networkingv1.IngressRule{{Host: name + ".test",
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: &pt, Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}}}}}}}}}},
		})
		in.Services = append(in.Services, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}})
		es := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name + "-x",
			Labels: map[string]string{discoveryv1.LabelServiceName: name}}, AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{{Port: &port}}}
		for j := range 2 {
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.%d.%d.%d", j, i/256, i%256)},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		in.EndpointSlices = append(in.EndpointSlices, es)
	}
	return in
}

// piecesRendered is piecesCluster(n) rendered once by an incremental
// renderer with the default templates.
func piecesRendered(t *testing.T, n int) (Config, *Incremental, render.Inputs, *render.Model, *Output) {
	t.Helper()
	tmpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{HTTPBind: ":80", HTTPSBind: ":443", Template: tmpl}
	in := piecesCluster(n)
	inc := NewIncremental(cfg)
	prev, out, err := inc.Render(in, render.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, inc, in, prev, out
}

// A pass HAProxy applies at run time leaves haproxy.cfg and the route
// maps in pieces: an endpoint move allocates a fraction of haproxy.cfg
// and a new host writes one chunk of a route map again, keeping the
// others. Read afterwards, each file is byte for byte what a full render
// writes, and put together once.
func TestRuntimePassKeepsFilesInPieces(t *testing.T) {
	const n = 2000
	cfg, inc, in, prev, prevOut := piecesRendered(t, n)
	for i, c := range []struct {
		name   string
		change func(in *render.Inputs, i int)
	}{
		{"endpoint move", func(in *render.Inputs, i int) {
			es := in.EndpointSlices[n/2].DeepCopy()
			es.Endpoints[0].Addresses[0] = fmt.Sprintf("10.200.0.%d", i)
			in.EndpointSlices[n/2] = es
			in.Unchanged = render.IngressesKind | render.ServicesKind | render.IngressClassesKind | render.SecretsKind | render.ConfigMapsKind
		}},
		{"new host", func(in *render.Inputs, i int) {
			ing := in.Ingresses[n/2+1].DeepCopy()
			ing.Spec.Rules[0].Host = "changed-" + strconv.Itoa(i) + ".test"
			in.Ingresses[n/2+1] = ing
			in.Unchanged = render.EndpointSlicesKind | render.ServicesKind | render.IngressClassesKind | render.SecretsKind | render.ConfigMapsKind
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Allocation per pass, over a few passes (no file read).
			const passes = 10
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var out *Output
			for k := range passes {
				c.change(&in, 100*i+k)
				m, o, err := inc.Render(in, render.Options{Previous: prev})
				if err != nil {
					t.Fatal(err)
				}
				prev, out = m, o
			}
			runtime.ReadMemStats(&after)
			perPass := int(after.TotalAlloc-before.TotalAlloc) / passes
			cfgFile, _ := out.file(ConfigFile)
			if c.name == "endpoint move" && perPass > cfgFile.Size()/2 {
				t.Errorf("an endpoint move allocates %d bytes a pass, haproxy.cfg is %d: put together?", perPass, cfgFile.Size())
			}
			for _, path := range []string{ConfigFile, ExactMapFile, PrefixMapFile} {
				f, _ := out.file(path)
				if f.lazy == nil {
					t.Fatalf("%s is not in pieces", path)
				}
			}
			if SameFiles(prevOut, out) {
				t.Error("SameFiles says nothing changed")
			}
			// One chunk of a route map written again, the others kept.
			if c.name == "new host" {
				kept, total := 0, 0
				for _, path := range []string{ExactMapFile, PrefixMapFile} {
					a, _ := prevOut.file(path)
					b, _ := out.file(path)
					x, y := a.lazy.(*routeMapText), b.lazy.(*routeMapText)
					// A kept chunk has the same rows (its lines may have
					// moved into the file put together since).
					was := map[**render.Route]bool{}
					for _, ch := range x.chunkList() {
						was[&ch.rows[0]] = true
					}
					for _, ch := range y.chunkList() {
						if was[&ch.rows[0]] {
							kept++
						}
						total++
					}
				}
				if kept < total-3 {
					t.Errorf("%d of %d route map chunks kept after one host changed ten times", kept, total)
				}
			}
			// The writer puts the files together while the loop
			// compares them (go test -race).
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, path := range []string{ConfigFile, ExactMapFile, PrefixMapFile} {
					out.Get(path)
				}
			}()
			SameFiles(prevOut, out)
			SameBesideSlots(prevOut, out)
			<-done
			// Put together, the file is the only copy of its pieces.
			file := out.Get(ConfigFile)
			within := func(piece, file []byte) bool { return len(piece) == 0 || sameBacking(piece, file) }
			for i, sec := range out.config.Sections() {
				if !within(sec, file) {
					t.Fatalf("section %d is not a piece of haproxy.cfg once put together", i)
				}
			}
			for _, path := range []string{ExactMapFile, PrefixMapFile} {
				f, _ := out.file(path)
				data := f.Data()
				for i, ch := range f.lazy.(*routeMapText).chunkList() {
					if !within(ch.data, data) {
						t.Fatalf("%s chunk %d is not a piece of the file once put together", path, i)
					}
				}
			}
			full, err := Render(prev, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range full.Files {
				got := out.Get(f.Path)
				if !bytes.Equal(got, f.Data()) {
					t.Errorf("%s differs from the full render's", f.Path)
				}
				if again := out.Get(f.Path); len(got) > 0 && &again[0] != &got[0] {
					t.Errorf("%s put together twice", f.Path)
				}
			}
			prevOut = out
		})
	}
}

// sameBacking reports whether piece lies inside file's memory.
func sameBacking(piece, file []byte) bool {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(file)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(piece)))
	return p >= start && p+uintptr(len(piece)) <= start+uintptr(len(file))
}

// WriteTo writes a file in pieces as it is, without putting it together
// and without allocating: what a generation's write (reload.Content)
// reads. The bytes are the full render's, also while another goroutine
// puts the file together (go test -race).
func TestWriteToWritesPieces(t *testing.T) {
	const n = 2000
	cfg, inc, in, prev, _ := piecesRendered(t, n)
	es := in.EndpointSlices[n/2].DeepCopy()
	es.Endpoints[0].Addresses[0] = "10.200.0.1"
	in.EndpointSlices[n/2] = es
	in.Unchanged = render.IngressesKind | render.ServicesKind | render.IngressClassesKind | render.SecretsKind | render.ConfigMapsKind
	m, out, err := inc.Render(in, render.Options{Previous: prev})
	if err != nil {
		t.Fatal(err)
	}
	full, err := Render(m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{ConfigFile, ExactMapFile, PrefixMapFile} {
		f, _ := out.file(path)
		if f.lazy == nil {
			t.Fatalf("%s is not in pieces", path)
		}
		if allocs := testing.AllocsPerRun(3, func() { f.WriteTo(io.Discard) }); allocs != 0 {
			t.Errorf("%s: WriteTo allocated %.0f times", path, allocs)
		}
		var buf bytes.Buffer
		if n, err := f.WriteTo(&buf); err != nil || n != int64(buf.Len()) || n != int64(f.Size()) {
			t.Fatalf("%s: WriteTo wrote %d bytes (%v), %d buffered, Size %d", path, n, err, buf.Len(), f.Size())
		}
		switch l := f.lazy.(type) {
		case *configParts:
			if l.file != nil {
				t.Errorf("%s was put together by WriteTo", path)
			}
		case *routeMapText:
			if l.file != nil {
				t.Errorf("%s was put together by WriteTo", path)
			}
		}
		want, _ := full.file(path)
		if !bytes.Equal(buf.Bytes(), want.Data()) {
			t.Errorf("%s: WriteTo's bytes differ from the full render's", path)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			f.Data()
		}()
		var again bytes.Buffer
		f.WriteTo(&again)
		<-done
		if !bytes.Equal(again.Bytes(), want.Data()) {
			t.Errorf("%s: WriteTo's bytes differ while the file is put together", path)
		}
	}
}

// ChangedSpan's line is where its spans start in the whole files, for
// haproxy.cfg (its line index) and the route maps (their chunks' line
// counts), when the change is far into a file of many pieces: an
// endpoint move, a new host, an Ingress gone.
func TestChangedSpanLines(t *testing.T) {
	const n = 600 // about twenty route map chunks, 600 backend sections
	_, inc, in, prev, out := piecesRendered(t, n)
	changes := []func(in *render.Inputs){
		func(in *render.Inputs) {
			es := in.EndpointSlices[n-50].DeepCopy()
			es.Endpoints[0].Addresses[0] = "10.200.0.9"
			in.EndpointSlices[n-50] = es
		},
		func(in *render.Inputs) {
			ing := in.Ingresses[n-70].DeepCopy()
			ing.Spec.Rules[0].Host = "changed.test"
			in.Ingresses[n-70] = ing
		},
		func(in *render.Inputs) { in.Ingresses = slices.Delete(slices.Clone(in.Ingresses), n-90, n-89) },
	}
	for k, change := range changes {
		change(&in)
		m, next, err := inc.Render(in, render.Options{Previous: prev})
		if err != nil {
			t.Fatal(err)
		}
		spans := 0
		for _, path := range []string{ConfigFile, ExactMapFile, PrefixMapFile} {
			x, y, line, ok := ChangedSpan(out, next, path, 3)
			if !ok {
				t.Fatalf("change %d: %s not in pieces", k, path)
			}
			if bytes.Equal(x, y) {
				continue
			}
			spans++
			for side, s := range map[string][]byte{"old": x, "new": y} {
				whole := out.Get(path)
				if side == "new" {
					whole = next.Get(path)
				}
				rest := whole
				for range line {
					rest = rest[bytes.IndexByte(rest, '\n')+1:]
				}
				if !bytes.HasPrefix(rest, s) || line < 100 {
					t.Errorf("change %d: %s's %s span is not at line %d of the whole file", k, path, side, line+1)
				}
			}
		}
		if spans == 0 {
			t.Errorf("change %d changed no file", k)
		}
		prev, out = m, next
	}
}
