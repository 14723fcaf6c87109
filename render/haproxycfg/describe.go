package haproxycfg

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"strings"
	"time"
)

// DescribePEM is what a person may see of a PEM file the sidecar wrote:
// for each certificate its subject, names, issuer, validity and SHA-256
// fingerprint, and only the type of any key. Dumps, history and diffs show
// certificate files through it: private keys never leave the config-dir.
func DescribePEM(data []byte) string {
	var b strings.Builder
	n := 0
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			fmt.Fprintf(&b, "# %s (not shown)\n", block.Type)
			continue
		}
		n++
		sum := sha256.Sum256(block.Bytes)
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			fmt.Fprintf(&b, "# certificate %d: sha256 %s (does not parse: %v)\n", n, hex.EncodeToString(sum[:]), err)
			continue
		}
		fmt.Fprintf(&b, "# certificate %d: sha256 %s\n", n, hex.EncodeToString(sum[:]))
		fmt.Fprintf(&b, "#   subject: %s\n", c.Subject)
		if names := c.DNSNames; len(names) > 0 {
			fmt.Fprintf(&b, "#   DNS names: %s\n", strings.Join(names, ", "))
		}
		fmt.Fprintf(&b, "#   issuer: %s\n", c.Issuer)
		fmt.Fprintf(&b, "#   valid: %s to %s\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339))
	}
	if n == 0 && b.Len() == 0 {
		return "# no PEM blocks\n"
	}
	return b.String()
}

// IsPEMFile reports whether a generated file holds certificates and keys,
// which are shown only through DescribePEM.
func IsPEMFile(path string) bool {
	return strings.HasPrefix(path, "certs/") || strings.HasSuffix(path, ".pem")
}

// HasUserlists reports whether the rendered haproxy.cfg holds password
// hashes (some backend has auth-basic-secret users): if not, RedactConfig
// has nothing to hide and a caller that knows the Output may skip it.
func (o *Output) HasUserlists() bool {
	for i := range o.model.Backends {
		if len(o.model.Backends[i].Users) > 0 {
			return true
		}
	}
	return false
}

// RedactConfig is haproxy.cfg as dumps, history and diffs show it: the
// password hashes of userlists (auth-basic-secret) are replaced, so that
// no endpoint or report hands them out for offline cracking. The file
// HAProxy reads keeps them.
func RedactConfig(data []byte) []byte {
	if !bytes.Contains(data, []byte("\n    user ")) {
		return data
	}
	var b bytes.Buffer
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("    user ")) {
			if i := bytes.Index(line, []byte(" password ")); i >= 0 {
				b.Write(line[:i])
				b.WriteString(" password <hash not shown>\n")
				continue
			}
		}
		b.Write(line)
	}
	return b.Bytes()
}
