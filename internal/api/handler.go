package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
)

// handler builds the HTTP handler of one route. Every route gets the same
// chain, outermost first: observe (recover, log, safe headers), authenticate
// and authorize (skipped for public routes), check the query, limit the
// body, run the endpoint and write its answer.
func (s *Server) handler(rt route) http.Handler {
	h := s.serveRoute(rt)
	if limit := rt.bodyLimit(); limit > 0 {
		h = s.limitBody(limit, h)
	}
	h = s.checkQuery(rt, h)
	if rt.perm != PermPublic {
		h = s.authorize(rt.perm, h)
		h = s.authenticate(h)
	}
	return s.observe(rt, h)
}

// serveRoute runs the endpoint and writes its result with the route's
// status.
func (s *Server) serveRoute(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		markdown, err := wantsMarkdown(rt, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		out, err := rt.serve(s, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if st, ok := out.(responseStream); ok {
			st.writeTo(w, r)
			return
		}
		if rt.out == nil {
			w.WriteHeader(rt.status)
			return
		}
		if d, ok := out.(*fleet.Device); ok {
			// The version is the device's entity tag: a client echoes it in
			// If-Match to update only what it read.
			w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(d.Version, 10)))
		}
		if md, ok := out.(interface{ Markdown() string }); ok && markdown {
			writeText(w, rt.status, "text/markdown; charset=utf-8", md.Markdown())
			return
		}
		s.writeJSON(w, r, rt.status, out)
	})
}

// wantsMarkdown reads ?format= of routes that offer Markdown.
func wantsMarkdown(rt route, r *http.Request) (bool, error) {
	if !rt.markdown {
		return false, nil
	}
	switch f := r.URL.Query().Get("format"); f {
	case "", "json":
		return false, nil
	case "md":
		return true, nil
	default:
		return false, queryError("format", "format %q is not json or md", f)
	}
}

// checkQuery refuses query parameters the route does not declare, and
// repeated parameters that take one value.
func (s *Server) checkQuery(rt route, next http.Handler) http.Handler {
	declared := map[string]queryParam{}
	var names []string
	for _, p := range rt.params() {
		declared[p.name] = p
		names = append(names, p.name)
	}
	accepts := "none"
	if len(names) > 0 {
		accepts = strings.Join(names, ", ")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			s.writeError(w, r, queryError("", "the query string is malformed: %v", err))
			return
		}
		for name, values := range q {
			p, ok := declared[name]
			switch {
			case !ok:
				s.writeError(w, r, queryError(name, "unknown query parameter %q; this route accepts: %s", name, accepts))
				return
			case len(values) > 1 && !p.repeat:
				s.writeError(w, r, queryError(name, "query parameter %q may be given only once", name))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// limitBody caps how much of the body any later reader can consume; going
// over makes the decoder fail with *http.MaxBytesError, answered with 413.
func (s *Server) limitBody(limit int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			// A declared length over the limit is refused before reading.
			s.writeError(w, r, &http.MaxBytesError{Limit: limit})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}

// observe recovers from panics with a 500 in the contract's shape, sets
// headers every answer needs, and logs each request at debug level.
func (s *Server) observe(rt route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		sw.Header().Set("X-Content-Type-Options", "nosniff")
		sw.Header().Set("Cache-Control", "no-store")
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				if sw.status == 0 {
					s.writeError(sw, r, fmt.Errorf("panic in %s: %v", rt.name, v))
				} else {
					s.log.ErrorContext(r.Context(), "panic after answering", "route", rt.name, "panic", v)
				}
			}
			s.log.DebugContext(r.Context(), "request", "route", rt.name, "method", r.Method, "path", r.URL.Path,
				"status", sw.status, "duration", time.Since(start))
		}()
		next.ServeHTTP(sw, r)
	})
}

// statusWriter remembers the status written, for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
