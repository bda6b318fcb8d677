package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// IntelFeed is a named set of threat-intelligence indicators.
type IntelFeed struct {
	Name        string    `json:"name"`
	Format      string    `json:"format"`
	Description string    `json:"description,omitempty"`
	Indicators  int64     `json:"indicators"`
	Version     int64     `json:"version"`
	ImportedAt  time.Time `json:"importedAt"`
	ImportedBy  string    `json:"importedBy"`
}

// IntelIndicator is one indicator: an ip, a cidr range or a domain.
type IntelIndicator struct {
	Type  string `json:"type"`
	Value string `json:"value"`
	Name  string `json:"name,omitempty"`
}

// IntelImport is the answer of ImportIntel: the feed as stored, and what
// the parser left out (STIX indicators Muster cannot match).
type IntelImport struct {
	Feed    IntelFeed `json:"feed"`
	Skipped []string  `json:"skipped,omitempty"`
}

// ImportIntel replaces feed's indicators with those of content (an IP,
// CIDR and domain list, or a STIX 2.1 bundle; format list, stix or auto).
func (c *Client) ImportIntel(ctx context.Context, feed, format, description string, content []byte) (*IntelImport, error) {
	return fetch[IntelImport](ctx, c, call{method: http.MethodPut, path: "/v1/intel/feeds/" + url.PathEscape(feed),
		body: map[string]string{"format": format, "description": description, "content": string(content)}})
}

// IntelFeeds lists the feeds.
func (c *Client) IntelFeeds(ctx context.Context) ([]IntelFeed, error) {
	var out struct {
		Items []IntelFeed `json:"items"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/intel/feeds"}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// IntelFeedItems reads a feed's indicators.
func (c *Client) IntelFeedItems(ctx context.Context, feed string) ([]IntelIndicator, error) {
	var out struct {
		Items []IntelIndicator `json:"items"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/intel/feeds/" + url.PathEscape(feed)}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// DeleteIntelFeed deletes a feed.
func (c *Client) DeleteIntelFeed(ctx context.Context, feed string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/intel/feeds/" + url.PathEscape(feed)}, nil)
}
