package config

import (
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// TestConfigEqual changes each field of a Config in turn: Equal must see every one, including fields added
// after it was written.
func TestConfigEqual(t *testing.T) {
	base := Config{
		NonMasqueradeCIDRs: []CIDR{at("10.0.0.0/8", 2)},
		MasqueradeCIDRs:    []CIDR{at("10.2.1.100/32", 4)},
		CIDRLimit:          64,
		ResyncInterval:     time.Minute,
		Files:              []string{file},
	}
	if !base.Equal(base) {
		t.Fatal("a config is not Equal to itself")
	}
	if !(Config{}).Equal(Config{NonMasqueradeCIDRs: []CIDR{}, Files: []string{}}) {
		t.Error("nil and empty lists are not Equal")
	}
	v := reflect.ValueOf(&base).Elem()
	for i := range v.NumField() {
		other := base
		o := reflect.ValueOf(&other).Elem().Field(i)
		switch f := v.Field(i); o.Kind() {
		case reflect.Bool:
			o.SetBool(!f.Bool())
		case reflect.Int, reflect.Int64:
			o.SetInt(f.Int() + 1)
		case reflect.Slice:
			switch f.Type() {
			case reflect.TypeFor[[]CIDR]():
				o.Set(reflect.ValueOf([]CIDR{{Prefix: netip.MustParsePrefix("192.0.2.0/24")}}))
			case reflect.TypeFor[[]Interface]():
				o.Set(reflect.ValueOf([]Interface{{Name: "eth1"}}))
			case reflect.TypeFor[[]Address]():
				o.Set(reflect.ValueOf([]Address{{Addr: netip.MustParseAddr("192.0.2.1")}}))
			case reflect.TypeFor[[]string]():
				o.Set(reflect.ValueOf([]string{"other"}))
			default:
				t.Fatalf("field %s: no test value for %s", v.Type().Field(i).Name, f.Type())
			}
		case reflect.Struct:
			if f.Type() != reflect.TypeFor[Interface]() {
				t.Fatalf("field %s: no test value for %s", v.Type().Field(i).Name, f.Type())
			}
			o.Set(reflect.ValueOf(Interface{Name: "eth1"}))
		default:
			t.Fatalf("field %s: no test value for %s", v.Type().Field(i).Name, f.Type())
		}
		if base.Equal(other) || other.Equal(base) {
			t.Errorf("Equal does not see a change of %s", v.Type().Field(i).Name)
		}
	}
	// Where a prefix was written counts, as a change of line changes the Sources the agent reports.
	moved := base
	moved.NonMasqueradeCIDRs = []CIDR{at("10.0.0.0/8", 3)}
	if base.Equal(moved) {
		t.Error("Equal does not see a change of Source")
	}
}
