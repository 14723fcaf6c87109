package render

// The runtime contract: what `run` may change in a running HAProxy
// without a reload, as values, so that the planner never parses rendered
// bytes back. The files render writes hold exactly these values.

// RuntimeMaps are the generated map files HAProxy changes at run time
// (add/set/del map), by the path HAProxy knows them by.
var RuntimeMaps = []string{ExactMapFile, PrefixMapFile, TLSHostsMapFile}

// MapEntries returns the key → value entries of a generated map file, as
// the file holds them; nil for a file that is not a runtime map.
func (o *Output) MapEntries(name string) map[string]string {
	m := o.model
	switch name {
	case ExactMapFile, PrefixMapFile:
		match := MatchExact
		if name == PrefixMapFile {
			match = MatchPrefix
		}
		entries := make(map[string]string, len(m.Routes))
		for i := range m.Routes {
			if r := &m.Routes[i]; r.Match == match {
				entries[r.Key] = r.Backend
			}
		}
		return entries
	case TLSHostsMapFile:
		entries := make(map[string]string, len(m.TLSHosts))
		for _, h := range m.TLSHosts {
			entries[h] = tlsHostValue
		}
		return entries
	}
	return nil
}

// tlsHostValue is the value of every TLS hosts map entry: the lookup only
// asks whether the host is there.
const tlsHostValue = "1"
