package api

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// writeJSON answers with v as JSON. It marshals before writing the status,
// so a value that cannot be encoded becomes a 500 instead of a truncated
// 200.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.log.ErrorContext(r.Context(), "encoding response", "method", r.Method, "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
		body = []byte(`{"code":"internal","message":"internal error; the server log has the details"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n')) // a failed write means the client left; nothing to do
}

// writeText answers with a text document such as a Markdown passport.
func writeText(w http.ResponseWriter, status int, contentType, text string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(text)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text))
}

// list is the envelope of every non-paginated listing.
type list[T any] struct {
	Items []T `json:"items"`
}

// listOf wraps items, never as null.
func listOf[T any](items []T) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items}
}
