package manifest

import (
	"bytes"
	"errors"
)

// A manifest file is cut into documents, and a List document into its
// items, by looking at lines only, without copying the file: each piece
// is then decoded on its own, on all cores (decodeFile).

// document is one document of a file: raw is a slice of the file's bytes
// (a copy only when it had to end in a newline).
type document struct {
	raw []byte
}

// errSeparator: a line starting with "---" has more than a comment after
// it. The line itself is not quoted: problems never hold document data.
var errSeparator = errors.New(`invalid document separator: a line starting with "---" may only be followed by a comment`)

// splitDocuments cuts a YAML stream into documents exactly as
// k8s.io/apimachinery's YAMLReader does (the reference decodeFile was
// written against, kept in the tests):
//   - a line starting with "---" ends the document before it and is not
//     part of any; when no document has started, it begins the next one
//     (YAML reads it as that document's start);
//   - anything but spaces or a comment after the "---" is an error, and
//     the rest of the file is not read (err, after the documents before);
//   - "\r\n" line ends read as "\n", and the last line gets a "\n".
//
// Documents that hold nothing (blank lines and comments) are returned too:
// they count in the documents' numbers ("document 3") people read.
func splitDocuments(data []byte) (docs []document, err error) {
	if bytes.Contains(data, []byte("\r\n")) {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}
	start := -1 // the current document's first byte; -1: none started
	for pos := 0; pos < len(data); {
		end := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := data[pos:end]
		if bytes.HasPrefix(line, []byte("---")) {
			if rest := bytes.TrimSpace(line[3:]); len(rest) > 0 && rest[0] != '#' {
				return docs, errSeparator
			}
			if start >= 0 {
				docs = append(docs, document{raw: data[start:pos]})
				start = -1
				pos = end
				continue
			}
		}
		if start < 0 {
			start = pos
		}
		pos = end
	}
	if start >= 0 {
		raw := data[start:]
		if raw[len(raw)-1] != '\n' {
			// A block scalar's last line keeps its line break only if
			// there is one (the reference's line reader adds it).
			raw = append(raw[:len(raw):len(raw)], '\n')
		}
		docs = append(docs, document{raw: raw})
	}
	return docs, nil
}

// isBlank reports whether a document holds only blank lines and comments
// (it is skipped, as an empty document).
func isBlank(raw []byte) bool {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}
