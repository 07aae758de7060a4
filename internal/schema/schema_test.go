package schema

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// The README documents every key the schema declares (its "The events" and
// "JSON" tables), so the front door cannot fall behind the output.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{Event{}, Summary{}, Process{}, Group{}, Peer{}, OpenAtExit{}} {
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			key, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			if !strings.Contains(string(readme), "`"+key+"`") {
				t.Errorf("README does not document %s's key `%s`", typ.Name(), key)
			}
		}
	}
}
