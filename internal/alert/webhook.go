package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/store"
)

// Headers of a webhook delivery. The signature is
// "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body)), so a
// receiver can check both who sent the body and that it is fresh.
const (
	HeaderEvent     = "X-Muster-Event"
	HeaderDelivery  = "X-Muster-Delivery"
	HeaderTimestamp = "X-Muster-Timestamp"
	HeaderSignature = "X-Muster-Signature"
)

// Sign returns the signature header value of body sent at unix time ts.
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10) + "."))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature means a delivery's signature or timestamp is wrong.
var ErrBadSignature = errors.New("alert: bad webhook signature")

// Verify checks a delivery's signature and that its timestamp is within
// maxAge of now: what a webhook receiver should do before trusting it.
func Verify(secret, timestamp, signature string, body []byte, maxAge time.Duration, now time.Time) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", timestamp, ErrBadSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxAge || d < -maxAge {
		return fmt.Errorf("timestamp is %s away from now: %w", d.Round(time.Second), ErrBadSignature)
	}
	if !hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature)) {
		return ErrBadSignature
	}
	return nil
}

// DeliveryStore is the webhook outbox; *store.Store implements it.
type DeliveryStore interface {
	ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]store.Delivery, error)
	FinishDelivery(ctx context.Context, id string, delivered bool, errText string, next *time.Time) error
}

// Delivery limits.
const (
	// MaxAttempts is how often a delivery is tried before it is given up
	// (recorded as failed); with the backoff below that spans about 4
	// hours.
	MaxAttempts   = 10
	deliveryLease = time.Minute
	firstBackoff  = 5 * time.Second
	maxBackoff    = time.Hour
)

// Deliverer sends queued alert events to webhooks, retrying failures with
// exponential backoff. Several nodes may run one: each delivery is claimed
// by one node at a time.
type Deliverer struct {
	Store  DeliveryStore
	Client *http.Client
	Logger *slog.Logger
	// Every is how often the outbox is checked; default one second.
	Every time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Run delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) {
	every := d.Every
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.DeliverDue(ctx)
		}
	}
}

// DeliverDue sends every delivery that is due now and reports how many it
// tried.
func (d *Deliverer) DeliverDue(ctx context.Context) int {
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ds, err := d.Store.ClaimDeliveries(ctx, 50, deliveryLease)
	if err != nil {
		log.WarnContext(ctx, "alert: cannot read the webhook outbox", "err", err)
		return 0
	}
	for _, dl := range ds {
		err := d.send(ctx, dl)
		var next *time.Time
		errText := ""
		if err != nil {
			errText = err.Error()
			if dl.Attempts+1 < MaxAttempts {
				backoff := min(maxBackoff, firstBackoff<<dl.Attempts)
				n := d.now().Add(backoff)
				next = &n
			}
			log.WarnContext(ctx, "alert: webhook delivery failed", "delivery", dl.ID, "url", dl.URL, "attempt", dl.Attempts+1, "err", err)
		}
		if ferr := d.Store.FinishDelivery(ctx, dl.ID, err == nil, errText, next); ferr != nil {
			log.WarnContext(ctx, "alert: cannot record a webhook delivery", "delivery", dl.ID, "err", ferr)
		}
	}
	return len(ds)
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deliverer) send(ctx context.Context, dl store.Delivery) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, dl.URL, bytes.NewReader(dl.Payload))
	if err != nil {
		return err
	}
	ts := d.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "muster-webhooks/1")
	req.Header.Set(HeaderEvent, dl.Event)
	req.Header.Set(HeaderDelivery, dl.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(dl.Secret, ts, dl.Payload))
	client := d.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
