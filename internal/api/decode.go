package api

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// decodeJSON strictly decodes the request body into a new T: the body must
// be application/json, one JSON value with no trailing data, with no field
// T does not declare and every field of the right JSON type. The body must
// already be limited (handler wraps it in http.MaxBytesReader).
func decodeJSON[T any](r *http.Request) (*T, error) {
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	v := new(T)
	if err := dec.Decode(v); err != nil {
		return nil, decodeError(err)
	}
	// A second value, or anything but whitespace, after the first is an
	// error: a client that sent two objects meant something we would drop.
	var rest json.RawMessage
	switch err := dec.Decode(&rest); {
	case errors.Is(err, io.EOF):
		return v, nil
	case err == nil:
		return nil, errorf(http.StatusBadRequest, codeBadJSON, "", "trailing data after the JSON object; send exactly one object")
	default:
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, toAPIError(err)
		}
		return nil, errorf(http.StatusBadRequest, codeBadJSON, "", "trailing data after the JSON object: %v", err)
	}
}

// checkContentType insists on application/json so that a form post or a
// mislabelled upload is refused before anything reads it.
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "",
			"Content-Type must be application/json, got %q", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "",
			"JSON must be UTF-8, got charset %q", cs)
	}
	return nil
}

// decodeError turns an encoding/json error into the contract's codes.
func decodeError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return toAPIError(err)
	}
	if errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, codeBadJSON, "", "request body is empty; send a JSON object")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errorf(http.StatusBadRequest, codeBadJSON, "", "request body ends in the middle of a JSON value")
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return errorf(http.StatusBadRequest, codeBadJSON, "", "request body is not valid JSON at byte %d: %v", se.Offset, se)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return errorf(http.StatusBadRequest, codeBadJSON, "", "request body must be a JSON object, got %s", te.Value)
		}
		return errorf(http.StatusBadRequest, codeInvalidType, te.Field, "%s must be %s, got %s", te.Field, jsonKind(te.Type), te.Value)
	}
	if pe, ok := errors.AsType[*time.ParseError](err); ok {
		return errorf(http.StatusBadRequest, codeInvalidType, "",
			"timestamp %s is not RFC 3339 (like 2025-01-02T15:04:05Z)", pe.Value)
	}
	// encoding/json reports unknown fields only as text; its format has
	// been stable since DisallowUnknownFields was added.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		return errorf(http.StatusBadRequest, codeUnknownField, name,
			"unknown field %q; see /v1/openapi.json for this route's fields", name)
	}
	return errorf(http.StatusBadRequest, codeBadJSON, "", "request body could not be decoded: %v", err)
}

// jsonKind names the JSON type a Go type decodes from.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Time]() {
		return "an RFC 3339 timestamp string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}
