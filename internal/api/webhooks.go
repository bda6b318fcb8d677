package api

import (
	"net/http"
	"net/url"

	"github.com/muster-iot/muster/internal/detect"
	"github.com/muster-iot/muster/internal/store"
)

// WebhookRequest is the body of POST /v1/webhooks.
type WebhookRequest struct {
	URL string `json:"url"`
	// Secret signs every delivery (HMAC-SHA256); at least 16 characters.
	Secret string `json:"secret"`
	// MinSeverity is the lowest severity delivered; default high.
	MinSeverity string `json:"minSeverity,omitempty"`
}

// WebhookList is the answer of GET /v1/webhooks.
type WebhookList struct {
	Items []store.Webhook `json:"items"`
}

// DeliveryList is the answer of GET /v1/webhooks/{id}/deliveries.
type DeliveryList struct {
	Items []store.Delivery `json:"items"`
}

func (s *Server) createWebhook(r *http.Request, in *WebhookRequest) (*store.Webhook, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	if err := checkWebhookURL(in.URL); err != nil {
		return nil, err
	}
	if len(in.Secret) < 16 {
		return nil, validationError("secret", "use at least 16 characters: it signs every delivery")
	}
	if in.MinSeverity == "" {
		in.MinSeverity = string(detect.SeverityHigh)
	}
	if detect.Severity(in.MinSeverity).Rank() == 0 {
		return nil, validationError("minSeverity", "%q: use low, medium, high or critical", in.MinSeverity)
	}
	w := &store.Webhook{URL: in.URL, Secret: in.Secret, MinSeverity: in.MinSeverity}
	if err := ds.CreateWebhook(r.Context(), w, principal(r).Actor()); err != nil {
		return nil, err
	}
	return w, nil
}

// checkWebhookURL accepts https URLs, and http only to this host (a local
// relay), so alert payloads never cross a network in clear text.
func checkWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return validationError("url", "%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if h := u.Hostname(); h == "localhost" || h == "127.0.0.1" || h == "::1" {
			return nil
		}
	}
	return validationError("url", "use https (http only to localhost): alert payloads describe your fleet")
}

func (s *Server) listWebhooks(r *http.Request) (*WebhookList, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	ws, err := ds.Webhooks(r.Context())
	if err != nil {
		return nil, err
	}
	return &WebhookList{Items: ws}, nil
}

func (s *Server) deleteWebhook(r *http.Request) error {
	ds, err := s.detectStore()
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	return alertError("webhook", id, ds.DeleteWebhook(r.Context(), id, principal(r).Actor()))
}

func (s *Server) webhookDeliveries(r *http.Request) (*DeliveryList, error) {
	ds, err := s.detectStore()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	if _, err := ds.GetWebhook(r.Context(), id); err != nil {
		return nil, alertError("webhook", id, err)
	}
	d, err := ds.Deliveries(r.Context(), id, 100)
	if err != nil {
		return nil, err
	}
	return &DeliveryList{Items: d}, nil
}
