package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/muster-iot/muster/internal/fleet"
	"github.com/muster-iot/muster/internal/store"
)

// The checks of devices, the gateway, histories and templates.

func checkNotSeen() Check {
	c := Check{ID: "not-seen", Severity: SeverityLow, Title: "Device not seen",
		Description: "A device that may connect has not been seen by the gateway for the not-seen period (default 30 days), or never connected although it became connectable that long ago."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		if err := errors.Join(sc.loadDevices(ctx), sc.loadPresence(ctx)); err != nil {
			return err
		}
		cutoff := sc.now.Add(-sc.p.NotSeenAfter)
		for dev, info := range sc.devices {
			if !fleet.CanConnect(info.state) {
				continue
			}
			p, seen := sc.presence[dev]
			switch {
			// Presence of a live session is refreshed every minute, so
			// last-seen alone decides; a connected flag left by a node
			// that died does not hide a device.
			case seen && p.LastSeen.After(cutoff):
				continue
			case !seen && info.stateChangedAt.After(cutoff):
				continue
			}
			msg := fmt.Sprintf("device %s (%s) has never connected since it became %s on %s", dev, info.state, info.state, info.stateChangedAt.Format(time.RFC3339))
			ev := map[string]any{"state": info.state}
			if seen {
				msg = fmt.Sprintf("device %s (%s) was last seen %s on node %s, %d days ago", dev, info.state, p.LastSeen.Format(time.RFC3339), p.Node,
					int(sc.now.Sub(p.LastSeen).Hours()/24))
				ev["lastSeen"], ev["node"] = p.LastSeen, p.Node
			}
			emit(c.finding(SubjectDevice, dev, dev, "", msg,
				"Find out whether the device is still in service; suspend or decommission it if not, so its certificate stops being accepted.", ev))
		}
		return nil
	}
	return c
}

func checkClientIDConflict() Check {
	c := Check{ID: "client-id-conflict", Severity: SeverityMedium, Title: "Conflicting client ids",
		Description: "Sessions of the device took each other over at least the takeover threshold (default 3) within the metering lookback: two clients are using one client id, or a device reconnects in a loop."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		if err := sc.loadMeter(ctx); err != nil {
			return err
		}
		for dev, m := range sc.meter {
			if m.takeovers < int64(sc.p.TakeoverThreshold) {
				continue
			}
			emit(c.finding(SubjectDevice, dev, dev, "",
				fmt.Sprintf("%d session takeovers of device %s in the last %s", m.takeovers, dev, sc.p.MeteringLookback),
				"Look at the device's metering windows (muster devices metrics ID): several source addresses mean a cloned certificate; one address means a reconnect loop in the firmware.",
				map[string]any{"takeovers": m.takeovers, "lookback": sc.p.MeteringLookback.String()}))
		}
		return nil
	}
	return c
}

func checkMeteringOff() Check {
	c := Check{ID: "metering-off", Severity: SeverityMedium, Title: "Metering switched off",
		Description: "A gateway node has live devices (presence within the metering lookback) but wrote no metering windows in that time, or metered sessions without any traffic: its metering is off or failing, and behaviour detection is blind there."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		if err := sc.loadMeter(ctx); err != nil {
			return err
		}
		for name, n := range sc.nodes {
			switch {
			case n.sessions > 0 && n.rows == 0:
				emit(c.finding(SubjectNode, name, "", "",
					fmt.Sprintf("node %s had %d devices connected in the last %s but saved no metering windows", name, n.sessions, sc.p.MeteringLookback),
					"Check the node's log for \"metering windows not saved\" and that its gateway runs with metering (it is on unless a benchmark build turned it off).",
					map[string]any{"sessions": n.sessions, "lastSeen": n.lastSeen}))
			case n.connects > 0 && n.traffic == 0:
				emit(c.finding(SubjectNode, name, "", "packets",
					fmt.Sprintf("node %s metered %d sessions in the last %s but no messages or bytes: packet metering is off", name, n.connects, sc.p.MeteringLookback),
					"Run the node's gateway with packet metering (gateway.Config.DisablePacketMetering is for benchmarks only).",
					map[string]any{"connects": n.connects}))
			}
		}
		return nil
	}
	return c
}

func checkHistoryBroken() Check {
	c := Check{ID: "history-broken", Severity: SeverityCritical, Title: "Broken history chain",
		Description: "A device history or the fleet audit log does not verify: an event was altered, removed or inserted, or the recorded head does not match the last event."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		heads, err := sc.st.ChainHeads(ctx)
		if err != nil {
			return err
		}
		report := func(subject string, brk fleet.ChainBreak) {
			kind, dev := SubjectDevice, subject
			if subject == fleet.FleetSubject {
				kind, dev = SubjectFleet, ""
			}
			emit(c.finding(kind, subject, dev, "",
				fmt.Sprintf("the history of %s does not verify at event %d: %s", subject, brk.Seq, brk.Reason),
				"Treat the database as tampered with: restore the history from a backup or an exported passport, and find who had write access to the database.",
				brk))
		}
		err = sc.st.EachChain(ctx, func(subject string, events []fleet.Event) error {
			if brk := fleet.VerifyChain(events); brk != nil {
				report(subject, *brk)
				delete(heads, subject)
				return nil
			}
			last := events[len(events)-1]
			if h, ok := heads[subject]; ok && (h.Seq != last.Seq || h.Hash != last.Hash) {
				report(subject, fleet.ChainBreak{Seq: last.Seq, Reason: fmt.Sprintf("the recorded head is event %d, the chain ends at event %d or its hash differs", h.Seq, last.Seq)})
			}
			delete(heads, subject)
			return nil
		})
		if err != nil {
			return err
		}
		// Heads whose chain has no events at all: the events were deleted.
		for subject, h := range heads {
			if h.Seq > 0 {
				report(subject, fleet.ChainBreak{Seq: 1, Reason: fmt.Sprintf("the recorded head is event %d but the chain has no events", h.Seq)})
			}
		}
		return nil
	}
	return c
}

func checkTopicPolicy() Check {
	c := Check{ID: "topic-policy-broad", Severity: SeverityHigh, Title: "Over-broad template topic policy",
		Description: "A provisioning template grants topics that reach beyond the device: a wildcard or another id at the device level (devices/+/…, #), a topic not under devices/{{device.id}}/ that uses wildcards, or system topics ($SYS, $share)."}
	c.run = func(ctx context.Context, sc *scan, emit func(store.Finding)) error {
		tmpls, err := sc.st.ListTemplates(ctx)
		if err != nil {
			return err
		}
		for _, t := range tmpls {
			var doc struct {
				Device struct {
					Topics struct {
						Publish   []string `json:"publish"`
						Subscribe []string `json:"subscribe"`
					} `json:"topics"`
				} `json:"device"`
			}
			if err := json.Unmarshal(t.Doc, &doc); err != nil {
				return fmt.Errorf("template %s: %w", t.Name, err)
			}
			var broad []string
			for _, e := range doc.Device.Topics.Publish {
				if why := broadTopic(e); why != "" {
					broad = append(broad, "publish "+e+": "+why)
				}
			}
			for _, e := range doc.Device.Topics.Subscribe {
				if why := broadTopic(e); why != "" {
					broad = append(broad, "subscribe "+e+": "+why)
				}
			}
			if len(broad) == 0 {
				continue
			}
			emit(c.finding(SubjectTemplate, t.Name, "", "",
				fmt.Sprintf("template %s (version %d) grants %d over-broad topics: %s", t.Name, t.Version, len(broad), strings.Join(broad, "; ")),
				"Scope every topic to the device: devices/{{device.id}}/… (muster templates update); use fleet/{group}/… for broadcasts.",
				map[string]any{"version": t.Version, "topics": broad}))
		}
		return nil
	}
	return c
}

// deviceIDRef is how a template names the device's own id in a topic.
const deviceIDRef = "{{device.id}}"

// broadTopic says why a template topic entry reaches beyond its device,
// or "" when it does not.
func broadTopic(topic string) string {
	levels := strings.Split(topic, "/")
	first := levels[0]
	hasWildcard := slices.ContainsFunc(levels, func(l string) bool { return strings.ContainsAny(l, "+#") })
	switch {
	case first == "#" || first == "+":
		return "wildcard at the first level reaches every device"
	case strings.HasPrefix(first, "$"):
		return "system topic"
	case first == "devices" && len(levels) < 2:
		return "the devices level itself"
	case first == "devices" && strings.ContainsAny(levels[1], "+#"):
		return "wildcard at the device level reaches other devices"
	case first == "devices" && strings.ReplaceAll(levels[1], " ", "") != deviceIDRef:
		return "names a device level other than " + deviceIDRef
	case first == "fleet" && (len(levels) < 2 || strings.ContainsAny(levels[1], "+#")):
		return "wildcard at the group level reaches every group's broadcasts"
	case first != "devices" && first != "fleet" && hasWildcard:
		return "wildcard outside the device's own topics"
	}
	return ""
}
