package haproxycfg

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/haproxy-sidecar/haproxy-sidecar/render"
)

// Every field of render.Backend a backend section is written from must
// be compared by sameSection, or the section cache serves a stale
// section after a change of only that field (a missed ErrorBackend did
// exactly that). Servers is the one field the writer does not read: the
// section has SlotAddrs.
func TestSameSectionComparesEveryField(t *testing.T) {
	notRead := map[string]bool{"Servers": true}
	base := render.Backend{Name: "default_web_80", Namespace: "default", Service: "web", Port: 80, PortName: "http",
		Slots: 4, SlotAddrs: []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:8080"), {}, {}, {}},
		Policy: &render.RoutePolicy{}, Ingress: "ing"}
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() || notRead[f.Name] {
			continue
		}
		changed := base
		if !mutate(reflect.ValueOf(&changed).Elem().Field(i)) {
			t.Errorf("field %s (%s): the test cannot change it; teach mutate its kind", f.Name, f.Type)
			continue
		}
		if sameSection(&base, &changed) {
			t.Errorf("field %s: a backend differing only in it renders the same section according to sameSection; compare it in samePolicy or sameSection", f.Name)
		}
	}
}

// mutate changes v to another value of its type, reporting whether it
// could.
func mutate(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Slice:
		v.Set(reflect.Append(reflect.MakeSlice(v.Type(), 0, v.Len()+1), append(sliceValues(v), reflect.New(v.Type().Elem()).Elem())...))
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		} else {
			n := reflect.New(v.Type().Elem())
			n.Elem().Set(v.Elem())
			if !mutateStruct(n.Elem()) {
				return false
			}
			v.Set(n)
		}
	case reflect.Struct:
		return mutateStruct(v)
	default:
		return false
	}
	return true
}

// mutateStruct changes the first field of a struct that mutate can.
func mutateStruct(v reflect.Value) bool {
	if v.Kind() != reflect.Struct {
		return mutate(v)
	}
	for i := range v.NumField() {
		if v.Type().Field(i).IsExported() && mutate(v.Field(i)) {
			return true
		}
	}
	return false
}

func sliceValues(v reflect.Value) []reflect.Value {
	out := make([]reflect.Value, v.Len())
	for i := range out {
		out[i] = v.Index(i)
	}
	return out
}
