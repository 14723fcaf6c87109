package render

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// certificatePEM checks a kubernetes.io/tls Secret and returns a PEM file
// for HAProxy holding the certificate chain followed by the private key.
//
// The blocks are decoded and encoded again rather than copied: a Secret can
// carry arbitrary text around valid PEM blocks (which Go's and HAProxy's
// parsers both skip), and none of that text may reach a file HAProxy reads.
func certificatePEM(s *corev1.Secret) ([]byte, error) {
	if s.Type != corev1.SecretTypeTLS {
		return nil, fmt.Errorf("type is %q, want %q", s.Type, corev1.SecretTypeTLS)
	}
	crt, key := s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey]
	if len(crt) == 0 {
		return nil, fmt.Errorf("data[%s] is missing or empty", corev1.TLSCertKey)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("data[%s] is missing or empty", corev1.TLSPrivateKeyKey)
	}

	var leaf *x509.Certificate
	out, certs, err := reencodeCertificates(crt, func(n int, c *x509.Certificate, err error) error {
		if err != nil {
			return fmt.Errorf("data[%s]: certificate %d: %w", corev1.TLSCertKey, n, err)
		}
		if err := strongEnough(c); err != nil {
			return fmt.Errorf("data[%s]: certificate %d (%s): %w", corev1.TLSCertKey, n, c.Subject.CommonName, err)
		}
		if n == 1 {
			leaf = c
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if certs == 0 {
		return nil, fmt.Errorf("data[%s]: no PEM CERTIFICATE block", corev1.TLSCertKey)
	}

	keyBlock, priv, err := privateKeyBlock(key)
	if err != nil {
		return nil, fmt.Errorf("data[%s]: %w", corev1.TLSPrivateKeyKey, err)
	}
	// Both are parsed already: comparing the keys here instead of
	// tls.X509KeyPair saves parsing them again (an ECDSA key's parse
	// computes its public key; 1,000 of them were 25 ms of a first pass).
	if err := pairs(leaf, priv); err != nil {
		return nil, fmt.Errorf("certificate and key do not form a pair: %w", err)
	}
	return append(out, pem.EncodeToMemory(keyBlock)...), nil
}

// pairs says whether priv is the private key of the certificate HAProxy
// serves with it, the first of the chain.
func pairs(leaf *x509.Certificate, priv any) error {
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return fmt.Errorf("a %T private key cannot sign", priv)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		return fmt.Errorf("the private key (%s) is not the first certificate's (%s)", keyAlgorithm(signer.Public()), leaf.PublicKeyAlgorithm)
	}
	return nil
}

// keyAlgorithm names a public key's algorithm as x509 does.
func keyAlgorithm(k crypto.PublicKey) string {
	switch k.(type) {
	case *rsa.PublicKey:
		return x509.RSA.String()
	case *ecdsa.PublicKey:
		return x509.ECDSA.String()
	case ed25519.PublicKey:
		return x509.Ed25519.String()
	}
	return fmt.Sprintf("%T", k)
}

// reencodeCertificates decodes the CERTIFICATE blocks of data and encodes
// them again, dropping every other block and any text around them. each
// sees every certificate (n counts from 1) with its parse error, and may
// stop with an error of its own.
func reencodeCertificates(data []byte, each func(n int, c *x509.Certificate, err error) error) ([]byte, int, error) {
	var out bytes.Buffer
	n := 0
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		n++
		c, err := x509.ParseCertificate(b.Bytes)
		if err := each(n, c, err); err != nil {
			return nil, n, err
		}
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: b.Bytes})
	}
	return out.Bytes(), n, nil
}

// strongEnough refuses what OpenSSL rejects at its default security level
// (Debian's SECLEVEL=2: 112-bit security). HAProxy fails the whole
// configuration on one certificate it cannot load, so such a Secret must be
// dropped here rather than take every other route down with it.
func strongEnough(c *x509.Certificate) error {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("RSA key of %d bits is too small for OpenSSL, need at least 2048", k.N.BitLen())
		}
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize < 224 {
			return fmt.Errorf("EC key of %d bits is too small for OpenSSL, need at least 224", k.Curve.Params().BitSize)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("public key type %T is not supported", c.PublicKey)
	}
	selfSigned := bytes.Equal(c.RawIssuer, c.RawSubject)
	switch c.SignatureAlgorithm {
	case x509.MD2WithRSA, x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1:
		if !selfSigned {
			return fmt.Errorf("signature algorithm %s is too weak for OpenSSL", c.SignatureAlgorithm)
		}
	}
	return nil
}

// privateKeyBlock returns the first private key block, re-typed from what
// its DER actually parses as, and marshalled again from the parsed key in
// the same format: what reaches HAProxy is what Go understood. Go derives
// an EC key's public point from the private scalar and ignores the one
// the DER carries, where OpenSSL refuses a key whose stored point does not
// match: copied as given, such a key passed the pair check here and then
// failed HAProxy's whole configuration (found by FuzzManifestRender). The
// parsed key, which the block encodes, is returned beside it.
func privateKeyBlock(data []byte) (*pem.Block, any, error) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, nil, errors.New("no PEM private key block")
		}
		if x509.IsEncryptedPEMBlock(b) { //nolint:staticcheck // detecting, not decrypting
			return nil, nil, errors.New("private key is encrypted")
		}
		var der []byte
		var key any
		switch b.Type {
		case "ENCRYPTED PRIVATE KEY":
			// PKCS#8 with a passphrase: HAProxy would ask for it on a
			// terminal it does not have.
			return nil, nil, errors.New("private key is encrypted (ENCRYPTED PRIVATE KEY); HAProxy needs it unencrypted")
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PKCS#8 private key: %w", err)
			}
			if der, err = x509.MarshalPKCS8PrivateKey(k); err != nil {
				return nil, nil, fmt.Errorf("PKCS#8 private key: %w", err)
			}
			key = k
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("PKCS#1 private key: %w", err)
			}
			der, key = x509.MarshalPKCS1PrivateKey(k), k
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, fmt.Errorf("EC private key: %w", err)
			}
			if der, err = x509.MarshalECPrivateKey(k); err != nil {
				return nil, nil, fmt.Errorf("EC private key: %w", err)
			}
			key = k
		default:
			continue
		}
		return &pem.Block{Type: b.Type, Bytes: der}, key, nil
	}
}

// HostlessNames are, for each certificate without SNI names, the names in
// the certificate (certificateNames) it is offered for: valid host names
// (lower case) that no certificate with SNI names lists and no earlier
// certificate without them carries, as explain follows them.
func HostlessNames(certs []Certificate) map[int][]string {
	var out map[int][]string
	taken := map[string]bool{}
	for i := range certs {
		for _, h := range certs[i].SNI {
			taken[h] = true
		}
	}
	for i := range certs {
		c := &certs[i]
		if len(c.SNI) > 0 {
			continue
		}
		var names []string
		for _, h := range certificateNames(c.PEM) {
			if taken[h] || validateHost(h) != nil {
				continue
			}
			taken[h] = true
			names = append(names, h)
		}
		if out == nil {
			out = map[int][]string{}
		}
		slices.Sort(names)
		out[i] = names
	}
	return out
}
