package client

import (
	"context"
	"fmt"
	"iter"
	"net/url"
	"strconv"
)

// Page is one page of a paginated list. NextCursor is empty on the last page;
// otherwise pass it back in ListOptions.Cursor to get the next one.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"nextCursor"`
}

// ListOptions selects a page: Limit items (1..1000; 0 means the server's
// default of 100) starting at Cursor (empty for the first page).
type ListOptions struct {
	Limit  int
	Cursor string
}

func (o ListOptions) encode(q url.Values) {
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
}

// iteratePages yields every item of every page fetch returns, following
// NextCursor, and fetches a page only when the consumer wants its first item.
// An error is yielded once, with a nil item, and ends the sequence.
func iteratePages[T any](ctx context.Context, fetch func(ctx context.Context, cursor string) (*Page[T], error)) iter.Seq2[*T, error] {
	return func(yield func(*T, error) bool) {
		cursor := ""
		for {
			page, err := fetch(ctx, cursor)
			if err != nil {
				yield(nil, err)
				return
			}
			for i := range page.Items {
				if !yield(&page.Items[i], nil) {
					return
				}
			}
			if page.NextCursor == "" {
				return
			}
			if page.NextCursor == cursor {
				// A server that hands back the cursor it was given would
				// keep the loop going forever.
				yield(nil, fmt.Errorf("pagination did not advance: the server returned cursor %q again", cursor))
				return
			}
			cursor = page.NextCursor
		}
	}
}
