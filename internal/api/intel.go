package api

import (
	"net/http"
	"strings"

	"github.com/muster-iot/muster/internal/intel"
	"github.com/muster-iot/muster/internal/store"
)

// intelBodyLimit bounds a feed import: feeds run to many thousand
// indicators.
const intelBodyLimit = 32 << 20

// IntelImportRequest is the body of PUT /v1/intel/feeds/{name}.
type IntelImportRequest struct {
	// Format is list, stix or auto (default).
	Format      string `json:"format,omitempty"`
	Description string `json:"description,omitempty"`
	// Content is the feed itself: a list or a STIX 2.1 bundle.
	Content string `json:"content"`
}

// IntelImport is the answer of an import.
type IntelImport struct {
	Feed    store.IntelFeed `json:"feed"`
	Skipped []string        `json:"skipped,omitempty"`
}

// IntelFeedDetail is a feed with its indicators.
type IntelFeedDetail struct {
	store.IntelFeed
	Items []store.IntelIndicator `json:"items"`
}

// IntelFeedList is the answer of GET /v1/intel/feeds.
type IntelFeedList struct {
	Items []store.IntelFeed `json:"items"`
}

func (s *Server) listIntelFeeds(r *http.Request) (*IntelFeedList, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	feeds, err := ds.IntelFeeds(r.Context())
	if err != nil {
		return nil, err
	}
	return &IntelFeedList{Items: feeds}, nil
}

func (s *Server) importIntelFeed(r *http.Request, in *IntelImportRequest) (*IntelImport, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	if !feedName(name) {
		return nil, validationError("name", "feed name %q: use 1-64 letters, digits, '.', '_' and '-'", name)
	}
	p, err := intel.Parse([]byte(in.Content), in.Format, s.now())
	if err != nil {
		return nil, validationError("content", "%s", strings.TrimPrefix(err.Error(), "intel: "))
	}
	format := in.Format
	if format == "" || format == intel.FormatAuto {
		format = intel.FormatList
		if strings.HasPrefix(strings.TrimSpace(in.Content), "{") {
			format = intel.FormatSTIX
		}
	}
	inds := make([]store.IntelIndicator, len(p.Indicators))
	for i, ind := range p.Indicators {
		inds[i] = store.IntelIndicator{Type: ind.Type, Value: ind.Value, Name: ind.Name}
	}
	f, err := ds.ReplaceIntelFeed(r.Context(), store.IntelFeed{Name: name, Format: format, Description: in.Description}, inds, principal(r).Actor())
	if err != nil {
		return nil, err
	}
	s.reloadDetector(r.Context())
	return &IntelImport{Feed: *f, Skipped: p.Skipped}, nil
}

func feedName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func (s *Server) getIntelFeed(r *http.Request) (*IntelFeedDetail, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	name := r.PathValue("name")
	feeds, err := ds.IntelFeeds(r.Context())
	if err != nil {
		return nil, err
	}
	for _, f := range feeds {
		if f.Name == name {
			items, err := ds.IntelIndicators(r.Context(), name)
			if err != nil {
				return nil, err
			}
			return &IntelFeedDetail{IntelFeed: f, Items: items}, nil
		}
	}
	return nil, notFound("intel feed", name)
}

func (s *Server) deleteIntelFeed(r *http.Request) error {
	ds, err := s.detectStore()
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	if err := ds.DeleteIntelFeed(r.Context(), name, principal(r).Actor()); err != nil {
		return alertError("intel feed", name, err)
	}
	s.reloadDetector(r.Context())
	return nil
}
