package render

import (
	"encoding/pem"
	"strings"
	"testing"
)

// A character outside ASCII is named as the character, not as the first
// byte of its UTF-8 encoding.
func TestValidatePathNamesTheCharacter(t *testing.T) {
	err := validatePath("/ü")
	if err == nil || !strings.Contains(err.Error(), "character 'ü' at offset 1") {
		t.Errorf("validatePath(/ü) = %v", err)
	}
}

// An encrypted PKCS#8 key says so: HAProxy cannot use it without a
// passphrase, and "no private key" would send the user looking elsewhere.
func TestEncryptedPKCS8Key(t *testing.T) {
	key := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}})
	_, err := privateKeyBlock(key)
	if err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted PKCS#8 key: %v, want an error saying it is encrypted", err)
	}
}

// A problem names a bad path without repeating all of it.
func TestValidatePathCutsLongValues(t *testing.T) {
	for _, p := range []string{"x" + strings.Repeat("a", 1000), "/" + strings.Repeat("a", 500) + "?q", "/" + strings.Repeat("a", 500) + " "} {
		err := validatePath(p)
		if err == nil || len(err.Error()) > 200 {
			t.Errorf("validatePath(%d bytes) = %v, want an error of at most 200 bytes", len(p), err)
		}
	}
}
