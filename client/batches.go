package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/muster-iot/muster/internal/mfg"
)

// The manufacturing types are the server's own, by alias
// (docs/decisions/0004-sdk-type-aliases.md).
type (
	// BatchResult is the outcome of one manifest row: ok, exists or error,
	// with the unit's device id and birth certificate (and, in key mode
	// mint, its private key, sent this once only).
	BatchResult = mfg.Result
	// BatchSummary counts a batch's results.
	BatchSummary = mfg.Summary
	// ManifestRow is one row of a JSON lines manifest.
	ManifestRow = mfg.Row
	// KeyMode says where a batch's birth identities come from.
	KeyMode = mfg.KeyMode
	// ManifestFormat is a manifest's encoding, CSV or JSON lines.
	ManifestFormat = mfg.Format
)

// Key modes and manifest formats.
const (
	KeyModeCSR      = mfg.KeyModeCSR
	KeyModeMint     = mfg.KeyModeMint
	KeyModeRegister = mfg.KeyModeRegister
	FormatCSV       = mfg.FormatCSV
	FormatJSONL     = mfg.FormatJSONL
)

// Result statuses.
const (
	StatusOK     = mfg.StatusOK
	StatusExists = mfg.StatusExists
	StatusError  = mfg.StatusError
)

// BatchOptions say how a manifest is registered.
type BatchOptions struct {
	// Format of the manifest; required.
	Format ManifestFormat
	// KeyMode; empty for the factory's default (csr, or register for a
	// factory with its own CA).
	KeyMode KeyMode
	// Batch names the batch; empty for a new id chosen by the server.
	Batch string
}

// BatchReport is how a submission ended.
type BatchReport struct {
	Batch   string       `json:"batch"`
	Summary BatchSummary `json:"summary"`
}

// Batch is a batch's record: its latest submission and that submission's
// totals.
type Batch struct {
	ID         string     `json:"id"`
	Factory    string     `json:"factory"`
	KeyMode    string     `json:"keyMode"`
	Status     string     `json:"status"` // running, done or failed
	Rows       int        `json:"rows"`
	OK         int        `json:"ok"`
	Existing   int        `json:"existing"`
	Errors     int        `json:"errors"`
	CreatedAt  time.Time  `json:"createdAt"`
	CreatedBy  string     `json:"createdBy"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// maxBatchLine bounds one line of a batch answer: a result with its
// certificate chain and key is a few KiB.
const maxBatchLine = 4 << 20

// batchLine is any line of a batch answer: a result, or the last line with
// the summary or the error that stopped the batch.
type batchLine struct {
	mfg.Result
	Batch   string        `json:"batch"`
	Summary *BatchSummary `json:"summary"`
	Error   *APIError     `json:"error"`
}

// ErrBatchCut means a batch answer ended without its summary: the
// connection broke. The rows answered so far are registered; submitting the
// manifest again registers the rest and answers the others as existing.
var ErrBatchCut = errors.New("the batch answer ended before its summary")

// SubmitBatch registers a manifest for factory, streaming it from manifest
// while the server answers, and calls onResult for every row's result in
// manifest order as it arrives. Rows the server refuses are results too,
// with status error; SubmitBatch fails only when the batch cannot be
// completed (the request is refused, the connection breaks, the server
// stops, onResult fails). The manifest is read once, so the request is
// never retried; it is idempotent, so the caller may submit it again.
func (c *Client) SubmitBatch(ctx context.Context, factory string, manifest io.Reader, opts BatchOptions, onResult func(BatchResult) error) (*BatchReport, error) {
	contentType := map[ManifestFormat]string{FormatCSV: "text/csv", FormatJSONL: "application/x-ndjson"}[opts.Format]
	if contentType == "" {
		return nil, fmt.Errorf("manifest format %q: want %s or %s", opts.Format, FormatCSV, FormatJSONL)
	}
	q := url.Values{}
	if opts.KeyMode != "" {
		q.Set("keyMode", string(opts.KeyMode))
	}
	if opts.Batch != "" {
		q.Set("batch", opts.Batch)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the upload when the answer ends early
	resp, err := c.send(ctx, call{method: http.MethodPost, path: factoryPath(factory) + "/batches", query: q,
		stream: manifest, contentType: contentType}, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	report := &BatchReport{Batch: resp.Header.Get("X-Muster-Batch")}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxBatchLine)
	rows := 0
	for sc.Scan() {
		var line batchLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("batch %s: decoding the answer after %d rows: %w", report.Batch, rows, err)
		}
		switch {
		case line.Error != nil:
			return nil, fmt.Errorf("batch %s: the server stopped after %d rows: %w", report.Batch, rows, line.Error)
		case line.Summary != nil:
			report.Summary = *line.Summary
			return report, nil
		}
		rows++
		if err := onResult(line.Result); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("batch %s: reading the answer after %d rows: %w", report.Batch, rows, err)
	}
	return nil, fmt.Errorf("batch %s, after %d rows: %w", report.Batch, rows, ErrBatchCut)
}

// GetBatch returns a factory's batch.
func (c *Client) GetBatch(ctx context.Context, factory, id string) (*Batch, error) {
	return fetch[Batch](ctx, c, call{method: http.MethodGet, path: factoryPath(factory) + "/batches/" + url.PathEscape(id)})
}
