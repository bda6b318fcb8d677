package client

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
)

// pagedServer serves devices dev_0..dev_{n-1} in pages of pageSize, using the
// index of the next device as the cursor.
func pagedServer(t *testing.T, n, pageSize int, fetches *int, failAt string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		*fetches++
		q := r.URL.Query()
		if q.Get("state") != "active" || q["attr"][0] != "a=1" || q["attr"][1] != "b=2" || q.Get("serial") != "SN" {
			t.Errorf("filter not sent as expected: %s", r.URL.RawQuery)
		}
		if q.Get("limit") != strconv.Itoa(devicesPageSize) {
			t.Errorf("limit = %q, want %d", q.Get("limit"), devicesPageSize)
		}
		cursor := q.Get("cursor")
		if failAt != "" && cursor == failAt {
			writeError(w, http.StatusBadRequest, CodeBadCursor, "bad cursor")
			return
		}
		start := 0
		if cursor != "" {
			start, _ = strconv.Atoi(cursor)
		}
		var page Page[Device]
		for i := start; i < n && i < start+pageSize; i++ {
			page.Items = append(page.Items, Device{ID: "dev_" + strconv.Itoa(i)})
		}
		if start+pageSize < n {
			page.NextCursor = strconv.Itoa(start + pageSize)
		}
		_ = json.NewEncoder(w).Encode(page)
	}
}

var pageFilter = DeviceFilter{State: StateActive, SerialPrefix: "SN", Attributes: map[string]string{"b": "2", "a": "1"}}

func TestDevicesIteratorFollowsCursor(t *testing.T) {
	fetches := 0
	c := newTestClient(t, pagedServer(t, 7, 3, &fetches, ""))
	var ids []string
	for d, err := range c.Devices(context.Background(), pageFilter) {
		if err != nil {
			t.Fatalf("iterator: %v", err)
		}
		ids = append(ids, d.ID)
	}
	if len(ids) != 7 || ids[0] != "dev_0" || ids[6] != "dev_6" {
		t.Fatalf("got %v, want dev_0..dev_6", ids)
	}
	if fetches != 3 {
		t.Fatalf("fetched %d pages, want 3", fetches)
	}
}

func TestDevicesIteratorStopsEarly(t *testing.T) {
	fetches := 0
	c := newTestClient(t, pagedServer(t, 7, 3, &fetches, ""))
	n := 0
	for _, err := range c.Devices(context.Background(), pageFilter) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 2 {
			break
		}
	}
	if fetches != 1 {
		t.Fatalf("fetched %d pages after breaking on the first page, want 1", fetches)
	}
}

func TestDevicesIteratorYieldsError(t *testing.T) {
	fetches := 0
	c := newTestClient(t, pagedServer(t, 7, 3, &fetches, "3"))
	var seen int
	var gotErr error
	for d, err := range c.Devices(context.Background(), pageFilter) {
		if err != nil {
			if d != nil {
				t.Fatal("error yielded with a device")
			}
			gotErr = err
			continue
		}
		seen++
	}
	if seen != 3 || !HasCode(gotErr, CodeBadCursor) {
		t.Fatalf("saw %d devices and error %v; want 3 then bad_cursor", seen, gotErr)
	}
}

func TestIteratorRejectsStuckCursor(t *testing.T) {
	calls := 0
	seq := iteratePages(context.Background(), func(context.Context, string) (*Page[int], error) {
		calls++
		return &Page[int]{Items: []int{calls}, NextCursor: "same"}, nil
	})
	var err error
	for _, e := range seq {
		if e != nil {
			err = e
		}
	}
	if err == nil || calls != 2 {
		t.Fatalf("calls = %d, err = %v; want an error after the cursor repeats", calls, err)
	}
}
