package render_test

import (
	"bufio"
	"bytes"
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/render/haproxycfg"
)

// The runtime contract holds for every golden case: the entries render
// hands the planner are exactly what its map files say, as HAProxy reads
// them (comment lines skipped, key and value split at the first space).
func TestMapEntriesAreTheFiles(t *testing.T) {
	for _, dir := range goldenCases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			_, out, _ := renderCase(t, dir, nil)
			for _, name := range haproxycfg.RuntimeMaps {
				fromFile := map[string]string{}
				sc := bufio.NewScanner(bytes.NewReader(out.Get(name)))
				for sc.Scan() {
					line := strings.TrimSpace(sc.Text())
					if line == "" || line[0] == '#' {
						continue
					}
					k, v, _ := strings.Cut(line, " ")
					if _, dup := fromFile[k]; dup {
						t.Errorf("%s: key %q twice", name, k)
					}
					fromFile[k] = v
				}
				if got := out.MapEntries(name); !maps.Equal(got, fromFile) {
					t.Errorf("%s: MapEntries %v, file %v", name, got, fromFile)
				}
			}
		})
	}
}
