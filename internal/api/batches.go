package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/mfg"
	"github.com/muster-iot/muster/internal/mfg/batch"
	"github.com/muster-iot/muster/internal/store"
)

// batchEnd is the last line of a batch answer: the summary, or the error
// that stopped the batch after the answer began. A stream without it was
// cut off.
type batchEnd struct {
	Batch   string       `json:"batch"`
	Summary *mfg.Summary `json:"summary,omitempty"`
	Error   *apiError    `json:"error,omitempty"`
}

// batchStream answers POST /v1/factories/{name}/batches: one mfg.Result
// line per manifest row, written as each chunk is committed, then a
// batchEnd line.
type batchStream struct {
	s   *Server
	job batch.Submission
	mr  *mfg.ManifestReader
}

// responseFlushEvery sizes the buffer results are written through; a chunk's
// results are flushed together anyway.
const responseFlushEvery = 64 << 10

func (s *Server) submitBatch(r *http.Request) (responseStream, error) {
	if _, err := s.caRegistry(); err != nil {
		return nil, err
	}
	p := principal(r)
	name := r.PathValue("name")
	if p.scoped() && p.Factory != name {
		return nil, errorf(http.StatusForbidden, codeForbidden, "factory", "this token submits batches for factory %q only", p.Factory)
	}
	sf, err := s.loadFactory(r)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	mode := mfg.DefaultKeyMode(sf.CAMode)
	if v := q.Get("keyMode"); v != "" {
		if mode, err = mfg.ParseKeyMode(v); err != nil {
			return nil, queryError("keyMode", "%v", err)
		}
	}
	if err := mfg.CheckKeyMode(sf.CAMode, mode); err != nil {
		return nil, queryError("keyMode", "%v", err)
	}
	format, err := manifestFormat(r)
	if err != nil {
		return nil, err
	}
	id := q.Get("batch")
	if id == "" {
		id = fleet.NewID("bat_", s.now())
	} else if err := fleet.ValidName("batch", id); err != nil {
		return nil, queryError("batch", "%v", err)
	}
	f, err := mfg.NewFactory(mfg.Factory{Name: sf.Name, Models: sf.Models, SerialPattern: sf.SerialPattern, CAMode: sf.CAMode})
	if err != nil {
		return nil, err
	}
	// A CA that cannot sign (its key unreadable on this node, say) fails
	// the request before the answer starts.
	if _, err := s.cas.IssuerFor(r.Context(), batch.IssuerPurpose(mode), sf.Name); err != nil {
		return nil, err
	}
	// A CSV header is read here, so a manifest with unknown columns is
	// refused with a status rather than in the stream.
	mr, err := mfg.NewManifestReader(r.Body, format)
	if err != nil {
		return nil, validationError("", "manifest: %v", err)
	}
	b := &store.Batch{ID: id, Factory: sf.Name, KeyMode: string(mode)}
	if err := s.store.CreateBatch(r.Context(), b, p.Actor()); errors.Is(err, store.ErrDuplicate) {
		return nil, errorf(http.StatusConflict, codeDuplicate, "batch", "batch %q belongs to another factory; choose another batch id", id)
	} else if err != nil {
		return nil, err
	}
	return &batchStream{s: s, mr: mr, job: batch.Submission{ID: id, Factory: f, KeyMode: mode, Actor: p.Actor()}}, nil
}

// manifestFormat is the format query parameter or, without it, the one the
// Content-Type names.
func manifestFormat(r *http.Request) (mfg.Format, error) {
	if v := r.URL.Query().Get("format"); v != "" {
		f, err := mfg.ParseFormat(v)
		if err != nil {
			return "", queryError("format", "%v", err)
		}
		return f, nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch mt {
	case "text/csv":
		return mfg.FormatCSV, nil
	case "application/x-ndjson", "application/jsonl", "application/x-jsonlines":
		return mfg.FormatJSONL, nil
	}
	return "", errorf(http.StatusUnsupportedMediaType, codeUnsupportedMedia, "",
		"a manifest is text/csv or application/x-ndjson (JSON lines), got Content-Type %q; or say ?format=csv|jsonl", ct)
}

func (b *batchStream) writeTo(w http.ResponseWriter, r *http.Request) {
	s, ctx := b.s, r.Context()
	rc := http.NewResponseController(w)
	// HTTP/1 servers otherwise finish reading the request before the
	// answer starts; the manifest streams in while results stream out.
	// HTTP/2 is full duplex anyway, and refuses the call.
	_ = rc.EnableFullDuplex()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Muster-Batch", b.job.ID)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, responseFlushEvery)
	enc := json.NewEncoder(bw)
	sum, err := s.batches.Run(ctx, b.job, b.mr, func(rs []mfg.Result) error {
		for i := range rs {
			if err := enc.Encode(&rs[i]); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	})
	end := batchEnd{Batch: b.job.ID}
	status := store.BatchDone
	if err != nil {
		status = store.BatchFailed
		end.Error = toAPIError(err)
		level := s.log.InfoContext
		if end.Error.status >= http.StatusInternalServerError && ctx.Err() == nil {
			level = s.log.ErrorContext
		}
		level(ctx, "batch stopped", "batch", b.job.ID, "factory", b.job.Factory.Name, "rows", sum.Rows, "err", err)
	} else {
		end.Summary = &sum
	}
	if err := enc.Encode(end); err == nil && bw.Flush() == nil {
		_ = rc.Flush()
	}
	// The batch's record is finished even when the client has gone.
	totals := store.BatchTotals{Rows: sum.Rows, OK: sum.OK, Existing: sum.Existing, Errors: sum.Errors}
	if err := s.store.FinishBatch(context.WithoutCancel(ctx), b.job.ID, status, totals); err != nil {
		s.log.ErrorContext(ctx, "recording the end of a batch", "batch", b.job.ID, "err", err)
	}
}

func (s *Server) getBatch(r *http.Request) (*store.Batch, error) {
	f, err := s.loadFactory(r)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("batch")
	b, err := s.store.GetBatch(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.Factory != f.Name) {
		return nil, notFound("batch", id)
	}
	return b, err
}
