package manifest

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/haproxy-sidecar/haproxy-sidecar/internal/testenv"
	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

func svcDoc(name string) string {
	return "apiVersion: v1\nkind: Service\nmetadata: {name: " + name + "}\nspec: {ports: [{port: 80}]}\n"
}

func serviceNames(in render.Inputs) []string {
	var names []string
	for _, s := range in.Services {
		names = append(names, s.Name)
	}
	return names
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// problemFor returns the first problem naming file, led by its reason:
// "FileUnreadable warning: File ...".
func problemFor(problems []render.Problem, file string) string {
	for _, p := range problems {
		if strings.Contains(p.Name, file) {
			return string(p.Reason) + " " + p.Report()
		}
	}
	return ""
}

// Files that are not regular files, or cannot be read, are problems on
// that file; everything else is served. None of them may block or
// exhaust memory.
func TestReaderSkipsWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), svcDoc("a"))
	if err := os.Symlink("/nonexistent", filepath.Join(dir, "zz.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	// Sparse: no disk space used, but larger than the limit.
	if err := os.WriteFile(filepath.Join(dir, "huge.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "huge.yaml"), MaxFileSize+1); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var in render.Inputs
	var problems []render.Problem
	var err error
	go func() {
		defer close(done)
		in, problems, err = Load(dir)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Load blocked (a FIFO opened for reading waits for a writer)")
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := serviceNames(in); len(got) != 1 || got[0] != "a" {
		t.Errorf("services %v, want [a]", got)
	}
	for file, want := range map[string]string{
		"zz.yaml":   `is a symbolic link to "/nonexistent", which does not exist; skipped`,
		"fifo.yaml": "is a named pipe (FIFO), not a regular file",
		"zero.yaml": "is a device, not a regular file",
		"huge.yaml": "is larger than the limit of 64 MiB",
	} {
		if got := problemFor(problems, file); !strings.Contains(got, want) || !strings.HasPrefix(got, "FileUnreadable warning:") {
			t.Errorf("%s: problem %q, want a FileUnreadable warning containing %q", file, got, want)
		}
	}
}

// A file that was read and then cannot be read, or then holds a document
// that does not decode, keeps serving what it held; a deleted file is gone.
func TestReaderKeepsLastGoodContent(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	writeFile(t, a, svcDoc("a"))
	writeFile(t, b, svcDoc("b1")+"---\n"+svcDoc("b2"))
	r := &Reader{Path: dir}
	load := func() ([]string, []render.Problem) {
		t.Helper()
		in, problems, err := r.Load()
		if err != nil {
			t.Fatal(err)
		}
		return serviceNames(in), problems
	}
	if got, _ := load(); strings.Join(got, ",") != "a,b1,b2" {
		t.Fatalf("services %v", got)
	}

	// b.yaml becomes a FIFO: its objects stay.
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, problems := load()
	if strings.Join(got, ",") != "a,b1,b2" {
		t.Errorf("after b.yaml became a FIFO: services %v, want a,b1,b2", got)
	}
	if p := problemFor(problems, "b.yaml"); !strings.HasPrefix(p, "FileUnreadable ") || !strings.Contains(p, "serving its objects as read at") {
		t.Errorf("problem %q", p)
	}

	// Half-written: one document does not decode. The file is served as
	// it was until it is whole again.
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	writeFile(t, b, svcDoc("b1")+"---\napiVersion: v1\nkind: Service\nmetadata: {name: [b2")
	got, problems = load()
	if strings.Join(got, ",") != "a,b1,b2" {
		t.Errorf("half-written b.yaml: services %v, want a,b1,b2", got)
	}
	if p := problemFor(problems, "b.yaml"); !strings.HasPrefix(p, "FileInvalid ") || !strings.Contains(p, "serving the file as read at") {
		t.Errorf("problem %q", p)
	}
	writeFile(t, b, svcDoc("b1")+"---\n"+svcDoc("b3"))
	if got, problems = load(); strings.Join(got, ",") != "a,b1,b3" || len(problems) != 0 {
		t.Errorf("whole again: services %v, problems %v", got, problemStrings(problems))
	}

	// Deleted: gone, no problem.
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	if got, problems = load(); strings.Join(got, ",") != "a" || len(problems) != 0 {
		t.Errorf("deleted: services %v, problems %v", got, problemStrings(problems))
	}
}

// A file renamed back and forth while passes run never drops its objects:
// a file gone between listing and reading makes the pass list again.
func TestReaderRenameRace(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), svcDoc("a"))
	writeFile(t, filepath.Join(dir, "m1.yaml"), svcDoc("m"))
	r := &Reader{Path: dir}
	if in, _, err := r.Load(); err != nil || len(in.Services) != 2 {
		t.Fatalf("first load: %d services, %v", len(in.Services), err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		names := [2]string{filepath.Join(dir, "m1.yaml"), filepath.Join(dir, "m2.yaml")}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = os.Rename(names[i%2], names[(i+1)%2])
			time.Sleep(2 * time.Millisecond)
		}
	}()
	missing := 0
	for range 300 {
		in, _, err := r.Load()
		if err != nil {
			t.Fatal(err)
		}
		if len(in.Services) != 2 {
			missing++
		}
		r.Reread() // read the files every time, as a change would
	}
	close(stop)
	<-done
	// 500 renames a second, six times the rate (149 404s from 687
	// renames in 8 s).
	if missing > 0 {
		t.Errorf("%d of 300 passes lost the renamed file's objects", missing)
	}
}

// Problems never quote object data: a Secret without "kind" must not put
// its private key into a report.
func TestDecodeErrorsDoNotQuoteData(t *testing.T) {
	_, key := testenv.SelfSigned(t, "a.example", "test")
	b64 := base64.StdEncoding.EncodeToString(key)
	doc := "apiVersion: v1\nmetadata: {name: s}\ntype: kubernetes.io/tls\ndata:\n  tls.key: " + b64 + "\n" +
		"---\napiVersion: v1\nkind: Secret\nmetadata: {name: t}\ndata: {tls.key: [" + b64 + "]}\n" +
		"---\n{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"u\"}, \"data\": {\"tls.key\": 5, \"x\": \"" + b64 + "\"}}\n"
	_, problems := Decode("s.yaml", []byte(doc))
	if len(problems) != 3 {
		t.Fatalf("want 3 problems, got %v", problemStrings(problems))
	}
	if got := problems[0].String(); !strings.Contains(got, `no "kind" field`) {
		t.Errorf("missing kind: %q", got)
	}
	for _, p := range problems {
		if p.Reason != render.FileInvalid {
			t.Errorf("problem %q has reason %q, want FileInvalid", p, p.Reason)
		}
		s := p.String()
		for _, chunk := range []string{b64[:16], b64[len(b64)/2 : len(b64)/2+16], "PRIVATE KEY"} {
			if strings.Contains(s, chunk) {
				t.Errorf("problem quotes the key: %q", s)
			}
		}
	}
}

// A file with many documents is decoded in parallel; objects and problems
// still come in document order.
func TestDecodeManyDocumentsInOrder(t *testing.T) {
	var b strings.Builder
	for i := range 400 {
		if i%50 == 7 {
			b.WriteString("apiVersion: v1\nkind: Service\nmetadata: [broken\n---\n")
			continue
		}
		fmt.Fprintf(&b, "%s---\n", svcDoc(fmt.Sprintf("s%03d", i)))
	}
	in, problems := Decode("many.yaml", []byte(b.String()))
	if len(in.Services) != 392 || len(problems) != 8 {
		t.Fatalf("%d services, %d problems", len(in.Services), len(problems))
	}
	for i := 1; i < len(in.Services); i++ {
		if in.Services[i-1].Name >= in.Services[i].Name {
			t.Fatalf("services out of document order at %d: %s, %s", i, in.Services[i-1].Name, in.Services[i].Name)
		}
	}
	for i, p := range problems {
		if want := fmt.Sprintf("(document %d)", i*50+8); !strings.Contains(p.Name, want) {
			t.Errorf("problem %d is %q, want %s", i, p.String(), want)
		}
	}
}

// A file's problems last as long as its content: a file that is not read
// again because it did not change still has them on every pass.
func TestReaderRepeatsProblemsOfUnchangedFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.yaml"), svcDoc("a"))
	writeFile(t, filepath.Join(dir, "bad.yaml"), "metadata: {name: x}\n---\n"+svcDoc("b"))
	r := &Reader{Path: dir}
	for pass := range 3 {
		in, problems, err := r.Load()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(serviceNames(in), ","); got != "a,b" {
			t.Errorf("pass %d: services %s, want a,b", pass, got)
		}
		if p := problemFor(problems, "bad.yaml"); !strings.HasPrefix(p, "FileInvalid ") {
			t.Errorf("pass %d: problem of bad.yaml %q, want a FileInvalid one", pass, p)
		}
	}
}
