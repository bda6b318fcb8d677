package api

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/muster-iot/muster/internal/fleet"
)

// TestManufacturerScoping checks that a manufacturer sees and touches only
// its own factory's devices, and learns nothing of the others'.
func TestManufacturerScoping(t *testing.T) {
	h := newHarness(t)
	mine := call[*fleet.Device](h, request{caller: "manufacturer", method: "POST", path: "/v1/devices", body: h.input("")}, http.StatusCreated)
	if mine.Identity.Factory != factory1 {
		t.Fatalf("factory defaulted to %q, want %q", mine.Identity.Factory, factory1)
	}
	call[*fleet.Device](h, request{caller: "manufacturer", method: "POST", path: "/v1/devices", body: h.input(factory1)}, http.StatusCreated)
	theirs := call[*fleet.Device](h, request{caller: manufacturer2, method: "POST", path: "/v1/devices", body: h.input("")}, http.StatusCreated)
	if theirs.Identity.Factory != factory2 {
		t.Fatalf("second manufacturer's device is in %q", theirs.Identity.Factory)
	}
	h.newDevice("f3")

	page := call[devicePage](h, request{caller: "manufacturer", method: "GET", path: "/v1/devices"}, http.StatusOK)
	if len(page.Items) != 2 {
		t.Errorf("manufacturer lists %d devices, want its own 2", len(page.Items))
	}
	for _, d := range page.Items {
		if d.Identity.Factory != factory1 {
			t.Errorf("manufacturer sees device of factory %s", d.Identity.Factory)
		}
	}
	page = call[devicePage](h, request{caller: "manufacturer", method: "GET", path: "/v1/devices?factory=factory-one"}, http.StatusOK)
	if len(page.Items) != 2 {
		t.Errorf("naming its own factory lists %d devices", len(page.Items))
	}
	page = call[devicePage](h, request{caller: "operator", method: "GET", path: "/v1/devices"}, http.StatusOK)
	if len(page.Items) != 4 {
		t.Errorf("operator lists %d devices, want all 4", len(page.Items))
	}

	// Every device route answers 404 for the other factory's device, the
	// same answer as for a device that does not exist.
	for _, rq := range []request{
		{method: "GET", path: "/v1/devices/%s"},
		{method: "GET", path: "/v1/devices/%s/components"},
		{method: "GET", path: "/v1/devices/%s/history"},
		{method: "GET", path: "/v1/devices/%s/history/verify"},
		{method: "GET", path: "/v1/devices/%s/passport"},
		{method: "GET", path: "/v1/devices/%s/passport?format=md"},
		{method: "PATCH", path: "/v1/devices/%s", body: `{"attributes":{"a":"b"}}`},
		{method: "POST", path: "/v1/devices/%s/qc", body: `{"test":"t","result":"pass"}`},
	} {
		before := h.snapshot(theirs.ID)
		rq.caller = "manufacturer"
		path := rq.path
		rq.path = fmt.Sprintf(path, theirs.ID)
		w := h.do(rq)
		rq.path = fmt.Sprintf(path, "dev_00000000000000000000000000")
		w2 := h.do(rq)
		if w.Code != http.StatusNotFound || w2.Code != http.StatusNotFound {
			t.Errorf("%s %s: %d for another factory's device, %d for none; want 404 for both", rq.method, path, w.Code, w2.Code)
		}
		if strings.Contains(w.Body.String(), factory2) {
			t.Errorf("404 body names the other factory: %s", w.Body)
		}
		h.assertUnchanged(t, before, theirs.ID)
	}
	// Its own device works on the same routes.
	call[*fleet.Device](h, request{caller: "manufacturer", method: "PATCH", path: "/v1/devices/" + mine.ID, body: `{"attributes":{"a":"b"}}`}, http.StatusOK)
	call[list[fleet.Event]](h, request{caller: "manufacturer", method: "GET", path: "/v1/devices/" + mine.ID + "/history"}, http.StatusOK)
}

// TestPagination walks a filtered listing page by page.
func TestPagination(t *testing.T) {
	h := newHarness(t)
	var want []string
	for i := range 25 {
		body := h.input(factory1)
		body["identity"].(map[string]any)["model"] = "pg-model"
		body["attributes"] = map[string]any{"parity": strconv.Itoa(i % 2)}
		d := call[*fleet.Device](h, request{caller: "admin", method: "POST", path: "/v1/devices", body: body}, http.StatusCreated)
		want = append(want, d.ID)
	}
	h.newDevice(factory1) // another model, filtered out

	walk := func(query string, limit int) (ids []string, pages []int) {
		t.Helper()
		cursor := ""
		for range 100 {
			path := fmt.Sprintf("/v1/devices?%s&limit=%d", query, limit)
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			page := call[devicePage](h, request{caller: "auditor", method: "GET", path: path}, http.StatusOK)
			pages = append(pages, len(page.Items))
			for _, d := range page.Items {
				ids = append(ids, d.ID)
			}
			if page.NextCursor == "" {
				return ids, pages
			}
			cursor = page.NextCursor
		}
		t.Fatal("pagination did not end")
		return nil, nil
	}
	ids, pages := walk("model=pg-model", 10)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("pages returned %d ids, want the 25 created, each once, in id order", len(ids))
	}
	if !slices.Equal(pages, []int{10, 10, 5}) {
		t.Errorf("page sizes = %v, want [10 10 5]", pages)
	}
	if ids, _ := walk("model=pg-model&attr=parity=1", 4); len(ids) != 12 {
		t.Errorf("attr filter listed %d devices, want 12", len(ids))
	}
	if ids, _ := walk("serial=SN-0000", 1000); len(ids) != 9 {
		t.Errorf("serial prefix SN-0000 listed %d devices, want 9", len(ids))
	}
	page := call[devicePage](h, request{caller: "auditor", method: "GET", path: "/v1/devices?model=none"}, http.StatusOK)
	if page.Items == nil || len(page.Items) != 0 || page.NextCursor != "" {
		t.Errorf("empty listing = %+v, want items [] and no cursor", page)
	}
	if w := h.do(request{caller: "auditor", method: "GET", path: "/v1/devices?model=none"}); !strings.Contains(w.Body.String(), `"items":[]`) {
		t.Errorf("empty listing JSON = %s", w.Body)
	}
}

// TestPatch checks section replacement, attribute merging, If-Match and
// what the history records.
func TestPatch(t *testing.T) {
	h := newHarness(t)
	d := h.newDevice(factory1)
	base := "/v1/devices/" + d.ID
	patch := func(body string, header map[string]string) *fleet.Device {
		t.Helper()
		return call[*fleet.Device](h, request{caller: "operator", method: "PATCH", path: base, body: body, header: header}, http.StatusOK)
	}
	d = patch(`{"attributes":{"color":"red","size":"xl"},"inventory":{"owner":"acme","groups":["north"]}}`, nil)
	if d.Attributes["color"] != "red" || d.Inventory.Owner != "acme" || d.Version != 2 {
		t.Fatalf("after patch: %+v %+v v%d", d.Attributes, d.Inventory, d.Version)
	}
	d = patch(`{"attributes":{"color":null,"shape":"round"}}`, map[string]string{"If-Match": `"2"`})
	if _, ok := d.Attributes["color"]; ok || d.Attributes["size"] != "xl" || d.Attributes["shape"] != "round" {
		t.Errorf("attributes did not merge: %v", d.Attributes)
	}
	if d.Inventory.Owner != "acme" {
		t.Errorf("a patch without inventory changed it: %+v", d.Inventory)
	}
	d = patch(`{"inventory":{"tags":["spare"]}}`, nil)
	if d.Inventory.Owner != "" || !slices.Equal(d.Inventory.Tags, []string{"spare"}) {
		t.Errorf("inventory was not replaced whole: %+v", d.Inventory)
	}
	// Identity: batch and revision change; repeating the immutable parts is fine.
	d = patch(fmt.Sprintf(`{"identity":{"serial":%q,"batch":"b9","hardwareRevision":"r2"}}`, d.Identity.Serial), nil)
	if d.Identity.Batch != "b9" || d.Identity.HardwareRevision != "r2" || d.Identity.Factory != factory1 {
		t.Errorf("identity = %+v", d.Identity)
	}
	// A BOM, then a null BOM clears it.
	d = patch(`{"manufacturing":{"bom":`+testBOM+`}}`, nil)
	if len(d.Manufacturing.BOM) == 0 {
		t.Fatal("BOM not stored")
	}
	d = patch(`{"manufacturing":{"bom":null}}`, nil)
	if len(d.Manufacturing.BOM) != 0 {
		t.Errorf("null BOM kept %s", d.Manufacturing.BOM)
	}

	w := h.do(request{caller: "operator", method: "GET", path: base})
	if got := w.Header().Get("ETag"); got != strconv.Quote(strconv.FormatInt(d.Version, 10)) {
		t.Errorf("ETag = %s, want version %d", got, d.Version)
	}
	hist := call[list[fleet.Event]](h, request{caller: "auditor", method: "GET", path: base + "/history"}, http.StatusOK)
	if n := len(hist.Items); n != int(d.Version) {
		t.Errorf("history has %d events for version %d", n, d.Version)
	}
	if e := hist.Items[2]; e.Type != fleet.EventUpdated || string(e.Data) != `{"attributes":{"color":null,"shape":"round"}}` {
		t.Errorf("attribute event = %s %s", e.Type, e.Data)
	}
	if e := hist.Items[5]; !strings.Contains(string(e.Data), `"bomSha256"`) || strings.Contains(string(e.Data), "bootloader") {
		t.Errorf("manufacturing event should name the BOM by digest, not copy it: %s", e.Data)
	}
}

// TestConcurrentIfMatch races two updates that read the same version: the
// store serialises them and exactly one wins, the other gets 412.
func TestConcurrentIfMatch(t *testing.T) {
	h := newHarness(t)
	d := h.newDevice(factory1)
	codes := make(chan int, 2)
	for i := range 2 {
		go func() {
			w := h.do(request{caller: "operator", method: "PATCH", path: "/v1/devices/" + d.ID,
				body: fmt.Sprintf(`{"attributes":{"writer":"%d"}}`, i), header: map[string]string{"If-Match": "1"}})
			codes <- w.Code
		}()
	}
	got := []int{<-codes, <-codes}
	slices.Sort(got)
	if !slices.Equal(got, []int{http.StatusOK, http.StatusPreconditionFailed}) {
		t.Errorf("concurrent updates answered %v, want one 200 and one 412", got)
	}
	hist := call[list[fleet.Event]](h, request{caller: "auditor", method: "GET", path: "/v1/devices/" + d.ID + "/history"}, http.StatusOK)
	if len(hist.Items) != 2 {
		t.Errorf("history has %d events, want created + one update", len(hist.Items))
	}
}
