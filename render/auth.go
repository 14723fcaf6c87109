package render

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Basic authentication costs HAProxy CPU in two places, both on threads
// nothing else can use meanwhile: http_auth() runs crypt(3) on the thread
// serving the request, and the configuration parser runs crypt(3) once for
// every "user ... password" line, to check that the hash is supported, at
// every `haproxy -c`, start and reload. A hash's cost is chosen by whoever
// writes the Secret (bcrypt cost 31, SHA-crypt rounds=999999999), so the
// sidecar bounds it: a user whose hash costs more than the limits below is
// left out and reported, an Ingress whose users together would cost more
// than authParseBudgetMicros at each parse gets none (401 for everyone),
// and so does a backend past its namespace's authNamespaceBudgetMicros
// (authbudget.go).
//
// The limits come from BENCHMARKS.md ("Basic authentication: crypt(3)
// cost"): each allowed hash costs at most about 2 ms of one core here.
// HAProxy's watchdog aborts the process when a thread runs for about one
// second of CPU (two with its second chance) without returning to its
// poller, and one pass of a thread runs up to tune.runqueue-depth tasks
// (35 to 280): 280 requests each checking a 2 ms hash take about half a
// second, below it, where one bcrypt cost-16 hash (3.4 s) alone killed
// the process.

const (
	// maxBcryptCost: cost 5 (32 rounds of the expensive key setup) is
	// htpasswd -B's default and about 2 ms here; each step doubles.
	maxBcryptCost = 5
	// maxSHACryptRounds: SHA-crypt's default (no rounds= field), about
	// 2 ms for $6$ and 1.4 ms for $5$ here.
	maxSHACryptRounds = 5000
	// maxYescryptNr bounds yescrypt's N·r (memory 128·N·r bytes, time in
	// proportion): N=2048 r=8 (mkpasswd -m yescrypt -R 2, "j85") is
	// 16384, 2 to 4 ms here; Debian's default (-R 5, "j9T", N=4096
	// r=32) is 131072, about 16 ms, and is refused.
	maxYescryptNr = 16384
	// authParseBudgetMicros bounds what one Ingress's userlists add to every
	// parse of the configuration: the estimated crypt(3) time of its
	// users, times the HAProxy backends that carry them (one per Service
	// port of the Ingress). 200 ms is about 90 users at the most costly
	// hash allowed, or about 1,300 MD5-crypt users (by the estimates below).
	authParseBudgetMicros = 200_000
)

// Estimated crypt(3) time of one hash in microseconds on the benchmark
// machine (BENCHMARKS.md), for the parse budget; rounded up.
const (
	bcryptMicrosPerRound   = 70 // per 2^cost
	sha512MicrosPer1000    = 420
	sha256MicrosPer1000    = 300
	md5cryptMicros         = 150
	yescryptMicrosPer1024N = 130 // per 1024 of N·r
)

// hashCost is what a parsed hash is and costs.
type hashCost struct {
	// scheme names it in problems: "bcrypt", "SHA-512-crypt", ...
	scheme string
	// param is its cost parameter as a problem shows it ("cost 12",
	// "rounds=999999999", "N·r=131072"); "" when it has none.
	param string
	// micros is the estimated crypt(3) time.
	micros int64
	// tooCostly: above this scheme's limit.
	tooCostly bool
}

// hashProblem says why a hash is not used; unsupported is a scheme
// HAProxy's crypt(3) does not compute, or one the sidecar does not accept.
type hashProblem struct {
	unsupported bool
	msg         string
}

const b64 = "./0-9A-Za-z"

var (
	bcryptHash   = regexp.MustCompile(`^\$2[aby]\$([0-9]{2})\$[` + b64 + `]{53}$`)
	shaCryptHash = regexp.MustCompile(`^\$([56])\$(?:rounds=([1-9][0-9]{0,8})\$)?[` + b64 + `]{0,16}\$([` + b64 + `]+)$`)
	md5CryptHash = regexp.MustCompile(`^\$1\$[` + b64 + `]{0,8}\$[` + b64 + `]{22}$`)
	// yescrypt as crypt_gensalt writes it: flavor "j" (the defaults),
	// then log2(N)-1 and r-1 as one character each, no optional
	// parameters.
	yescryptHash = regexp.MustCompile(`^\$y\$j([` + b64 + `])([` + b64 + `])\$([` + b64 + `]{0,64})\$[` + b64 + `]{43}$`)
)

// itoa64 is crypt's base-64 alphabet, in value order.
const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// rehash is what a problem tells the Secret's owner to run.
const rehash = "re-hash the password with `htpasswd -nbB -C 5 USER PASSWORD` (bcrypt) or `mkpasswd -m sha-512 PASSWORD` (SHA-crypt, default rounds)"

// classifyHash reads an htpasswd hash: its scheme and cost, or why it
// cannot be used. It accepts only what libxcrypt, HAProxy's crypt(3) on
// Debian, computes. HAProxy does not notice a hash crypt(3) refuses (its
// check only wants a result, and libxcrypt returns a failure token): that
// user could never log in, silently.
func classifyHash(h string) (hashCost, *hashProblem) {
	switch {
	case strings.HasPrefix(h, "$2"):
		m := bcryptHash.FindStringSubmatch(h)
		if m == nil {
			if len(h) > 3 && h[3] == '$' && !strings.ContainsRune("aby", rune(h[2])) {
				return hashCost{}, &hashProblem{unsupported: true, msg: "bcrypt variant $2" + string(h[2]) + "$ is not accepted (only $2a$, $2b$, $2y$); " + rehash}
			}
			return hashCost{}, &hashProblem{msg: "not a well-formed bcrypt hash"}
		}
		cost, _ := strconv.Atoi(m[1])
		if cost < 4 {
			return hashCost{}, &hashProblem{msg: "bcrypt cost below 4, which crypt(3) refuses (no password would match)"}
		}
		return hashCost{scheme: "bcrypt", param: "cost " + m[1], micros: bcryptMicrosPerRound << cost, tooCostly: cost > maxBcryptCost}, nil
	case strings.HasPrefix(h, "$5$") || strings.HasPrefix(h, "$6$"):
		m := shaCryptHash.FindStringSubmatch(h)
		if m == nil || (m[1] == "5" && len(m[3]) != 43) || (m[1] == "6" && len(m[3]) != 86) {
			return hashCost{}, &hashProblem{msg: "not a well-formed SHA-crypt hash"}
		}
		rounds, param := 5000, ""
		if m[2] != "" {
			rounds, _ = strconv.Atoi(m[2])
			param = "rounds=" + m[2]
			if rounds < 1000 {
				return hashCost{}, &hashProblem{msg: "SHA-crypt rounds below 1000, which crypt(3) refuses (no password would match)"}
			}
		}
		c := hashCost{scheme: "SHA-512-crypt", param: param, micros: int64(rounds) * sha512MicrosPer1000 / 1000, tooCostly: rounds > maxSHACryptRounds}
		if m[1] == "5" {
			c.scheme, c.micros = "SHA-256-crypt", int64(rounds)*sha256MicrosPer1000/1000
		}
		return c, nil
	case strings.HasPrefix(h, "$1$"):
		if !md5CryptHash.MatchString(h) {
			return hashCost{}, &hashProblem{msg: "not a well-formed MD5-crypt hash"}
		}
		return hashCost{scheme: "MD5-crypt", micros: md5cryptMicros}, nil
	case strings.HasPrefix(h, "$y$"):
		m := yescryptHash.FindStringSubmatch(h)
		if m == nil {
			return hashCost{}, &hashProblem{unsupported: true, msg: "yescrypt is accepted only in the form crypt_gensalt writes ($y$j<N><r>$...), without further parameters; " + rehash}
		}
		nLog2, r := strings.IndexByte(itoa64, m[1][0])+1, strings.IndexByte(itoa64, m[2][0])+1
		if nLog2 > 48 || r > 48 {
			// A character from 'k' on begins a value of several
			// characters: not what crypt_gensalt writes.
			return hashCost{}, &hashProblem{unsupported: true, msg: "yescrypt is accepted only in the form crypt_gensalt writes ($y$j<N><r>$...), without further parameters; " + rehash}
		}
		if nLog2 < 2 || !yescryptSalt(m[3]) {
			// crypt(3) refuses N=2 and a salt that does not decode to
			// whole bytes.
			return hashCost{}, &hashProblem{msg: "not a well-formed yescrypt hash"}
		}
		var nr uint64 = 1 << min(nLog2, 40) * uint64(r)
		c := hashCost{scheme: "yescrypt", param: "N=2^" + strconv.Itoa(nLog2) + " r=" + strconv.Itoa(r), tooCostly: nr > maxYescryptNr}
		c.micros = int64(min(nr, 1<<40) / 1024 * yescryptMicrosPer1024N)
		return c, nil
	case strings.HasPrefix(h, "$apr1$"):
		return hashCost{}, &hashProblem{unsupported: true, msg: "Apache MD5 ($apr1$, htpasswd's default) is not computed by HAProxy's crypt(3); " + rehash}
	}
	return hashCost{}, &hashProblem{unsupported: true, msg: "the hash is not bcrypt ($2y$), SHA-crypt ($5$, $6$), MD5-crypt ($1$) or yescrypt ($y$); " + rehash}
}

// yescryptSalt is true for a salt libxcrypt decodes: groups of four
// characters, then a tail of two or three whose bits beyond the last whole
// byte are zero (crypt's base 64 puts the first character in the low
// bits).
func yescryptSalt(s string) bool {
	switch tail := s[len(s)-len(s)%4:]; len(tail) {
	case 0:
		return true
	case 2:
		return strings.IndexByte(itoa64, tail[1]) < 4
	case 3:
		return strings.IndexByte(itoa64, tail[2]) < 16
	}
	return false
}

// HTPasswdUser is one user of an auth-basic-secret.
type HTPasswdUser struct {
	Name string
	// Hash is a bcrypt ($2a$, $2b$, $2y$), SHA-crypt ($5$, $6$),
	// MD5-crypt ($1$) or yescrypt ($y$) hash within the limits above.
	Hash string
	// Micros is its estimated crypt(3) time at each parse, for the
	// namespace's budget (limitAuthByNamespace).
	Micros int64
}

// maxUsers bounds an htpasswd file.
const maxUsers = 10000

var htUser = regexp.MustCompile(`^[A-Za-z0-9._@+-]{1,64}$`)

// htpasswd is a parsed htpasswd file: the users HAProxy gets, and those
// left out.
type htpasswd struct {
	users []HTPasswdUser
	// unsupported and tooCostly are the users left out, as problems name
	// them; firstWhy is the first one's reason in words.
	unsupported, tooCostly []leftOutUser
	// micros is the users' estimated crypt(3) time at each parse.
	micros int64
}

// leftOutUser names a user by name and line, never by hash.
type leftOutUser struct {
	name string
	line int
	why  string
}

// parseHTPasswd reads an htpasswd file: "user:hash" lines, '#' comments.
// A line that is not user:hash, or a malformed hash, makes the whole file
// invalid; a user whose scheme is not accepted or whose hash costs too much
// is left out. Problems name line numbers and users, never hashes: the file
// holds secrets.
func parseHTPasswd(data []byte) (*htpasswd, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("no htpasswd file under key auth")
	}
	out := &htpasswd{}
	seen := map[string]bool{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || !htUser.MatchString(name) {
			return nil, fmt.Errorf("line %d of key auth is not user:hash with a user name of letters, digits and ._@+-", i+1)
		}
		if seen[name] {
			return nil, fmt.Errorf("line %d of key auth: user listed twice", i+1)
		}
		seen[name] = true
		if len(seen) > maxUsers {
			return nil, fmt.Errorf("more than %d users", maxUsers)
		}
		c, prob := classifyHash(hash)
		switch {
		case prob != nil && !prob.unsupported:
			return nil, fmt.Errorf("line %d of key auth (user %s): %s", i+1, name, prob.msg)
		case prob != nil:
			out.unsupported = append(out.unsupported, leftOutUser{name: name, line: i + 1, why: prob.msg})
		case c.tooCostly:
			out.tooCostly = append(out.tooCostly, leftOutUser{name: name, line: i + 1, why: c.scheme + " " + c.param})
		default:
			out.users = append(out.users, HTPasswdUser{Name: name, Hash: hash, Micros: c.micros})
			out.micros += c.micros
		}
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("no user in key auth")
	}
	return out, nil
}

// listUsers names left-out users for a problem: at most ten, then a count.
func listUsers(us []leftOutUser, withWhy bool) string {
	var parts []string
	for i, u := range us {
		if i == 10 {
			parts = append(parts, fmt.Sprintf("and %d more", len(us)-10))
			break
		}
		s := fmt.Sprintf("%s (line %d", u.name, u.line)
		if withWhy {
			s += ", " + u.why
		}
		parts = append(parts, s+")")
	}
	return strings.Join(parts, ", ")
}

// authUsers reads an Ingress's auth-basic-secret and reports what it
// leaves out; nil users (every request gets 401) when the Secret is
// missing, invalid, has no usable user or is over the parse budget.
// backends is how many HAProxy backends (Service ports) carry the
// Ingress's userlist.
func (b *builder) authUsers(r reporter, field, namespace, secret string, backends int) []HTPasswdUser {
	key := namespace + "/" + secret
	sec := b.secrets[key]
	if sec == nil {
		r.warn(field, AnnotationSecretNotFound, "Secret %s not found; every request to the Ingress's paths gets 401 until it exists", key)
		return nil
	}
	f, err := parseHTPasswd(sec.Data["auth"])
	if err != nil {
		r.warn(field, AnnotationSecretInvalid, "Secret %s: %v; every request to the Ingress's paths gets 401 until it is fixed", key, err)
		return nil
	}
	closed := ""
	if len(f.users) == 0 {
		closed = "; no usable user is left: every request to the Ingress's paths gets 401 until it is fixed"
	}
	if len(f.unsupported) > 0 {
		r.warn(field, AuthHashUnsupported, "Secret %s: users left out, their hashes cannot be used: %s%s",
			key, listUsers(f.unsupported, true), closed)
	}
	if len(f.tooCostly) > 0 {
		r.warn(field, AuthHashTooCostly, "Secret %s: users left out, their hashes cost too much CPU for HAProxy to check (allowed: bcrypt cost up to %d, SHA-crypt rounds up to %d, yescrypt N·r up to %d, MD5-crypt): %s; %s%s",
			key, maxBcryptCost, maxSHACryptRounds, maxYescryptNr, listUsers(f.tooCostly, true), rehash, closed)
	}
	if len(f.users) == 0 {
		return nil
	}
	if total := f.micros * int64(max(backends, 1)); total > authParseBudgetMicros {
		r.warn(field, AuthSecretTooCostly, "Secret %s: checking its %d users' hashes would add about %d ms to every HAProxy start and reload (the Ingress has them in %d backend(s), one per Service port), more than the %d ms an Ingress may add; every request to the Ingress's paths gets 401 until it has fewer users or cheaper hashes",
			key, len(f.users), (total+999)/1000, max(backends, 1), authParseBudgetMicros/1000)
		return nil
	}
	return f.users
}

// authBackends is how many backends carry an Ingress's route policy: one
// per Service port its paths and default backend name (an upper bound:
// some may not resolve).
func authBackends(p *parsedIngress) int {
	var refs []ServiceRef
	add := func(pb *parsedBackend) {
		if pb.problem == nil && !slices.Contains(refs, pb.ref) {
			refs = append(refs, pb.ref)
		}
	}
	for i := range p.paths {
		if p.paths[i].problem == nil {
			add(&p.paths[i].backend)
		}
	}
	if p.defaultBackend != nil {
		add(p.defaultBackend)
	}
	return len(refs)
}
