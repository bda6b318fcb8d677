package mfg

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestSummary(t *testing.T) {
	var s Summary
	for _, r := range []Result{
		{Status: StatusOK}, {Status: StatusOK}, {Status: StatusExists},
		{Status: StatusError, Code: CodeScope}, {Status: StatusError, Code: CodeScope}, {Status: StatusError, Code: CodeParse},
		{Status: "weird"},
	} {
		s.Add(r)
	}
	s.Finish(2 * time.Second)
	if s.Rows != 7 || s.OK != 2 || s.Existing != 1 || s.Errors != 4 || s.RowsPerSec != 3.5 ||
		s.ErrorsByCode[CodeScope] != 2 || s.ErrorsByCode[CodeParse] != 1 || s.ErrorsByCode[""] != 1 {
		t.Errorf("summary = %+v", s)
	}
	var zero Summary
	zero.Finish(0)
	if zero.RowsPerSec != 0 {
		t.Errorf("rate with no time = %v", zero.RowsPerSec)
	}
}

func TestErrorResult(t *testing.T) {
	row := Row{Line: 4, Serial: "S1", Model: "M1"}
	res := ErrorResult(row, &RowError{Line: 4, Serial: "S1", Code: CodeScope, Field: "identity.serial", Message: "outside"})
	want := Result{Line: 4, Serial: "S1", Model: "M1", Status: StatusError, Code: CodeScope, Field: "identity.serial", Message: "outside"}
	if res != want {
		t.Errorf("ErrorResult = %+v, want %+v", res, want)
	}
	if res := ErrorResult(row, errors.New("database is locked")); res.Code != CodeInternal || res.Message != "database is locked" {
		t.Errorf("ErrorResult(other) = %+v", res)
	}
}

func TestResultJSON(t *testing.T) {
	b, err := json.Marshal(Result{Line: 2, Serial: "S1", Status: StatusOK, DeviceID: "dev_1", KeyPEM: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"line":2,"serial":"S1","deviceId":"dev_1","status":"ok","keyPem":"k"}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
}
