package fleet

import (
	"encoding/json"
	"testing"
	"time"
)

func chain(n int) []Event {
	var evs []Event
	var prev *Event
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for i := range n {
		e := Event{Subject: "dev_1", Type: EventUpdated, Actor: "admin/root", At: at.Add(time.Duration(i) * time.Second),
			Data: json.RawMessage(`{"n":` + string(rune('0'+i)) + `}`)}
		e.Seal(prev)
		evs = append(evs, e)
		prev = &evs[len(evs)-1]
	}
	return evs
}

func TestChainVerifies(t *testing.T) {
	evs := chain(5)
	if b := VerifyChain(evs); b != nil {
		t.Fatalf("fresh chain broken: %+v", b)
	}
	if evs[0].Seq != 1 || evs[4].Seq != 5 || evs[1].PrevHash != evs[0].Hash {
		t.Fatalf("bad links: %+v", evs[:2])
	}
	if evs[0].At.Nanosecond()%1000 != 0 {
		t.Fatal("Seal must truncate time to microseconds so stores round-trip it")
	}
}

func TestChainDetectsTampering(t *testing.T) {
	cases := map[string]func(evs []Event){
		"data":     func(evs []Event) { evs[2].Data = json.RawMessage(`{"n":9}`) },
		"actor":    func(evs []Event) { evs[2].Actor = "someone-else" },
		"type":     func(evs []Event) { evs[2].Type = EventCreated },
		"time":     func(evs []Event) { evs[2].At = evs[2].At.Add(time.Microsecond) },
		"subject":  func(evs []Event) { evs[2].Subject = "dev_2" },
		"prevhash": func(evs []Event) { evs[2].PrevHash = evs[0].Hash },
		"rehashed": func(evs []Event) { evs[2].Data = json.RawMessage(`{}`); evs[2].Hash = evs[2].computeHash() },
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			evs := chain(5)
			tamper(evs)
			b := VerifyChain(evs)
			if b == nil {
				t.Fatal("tampering not detected")
			}
			want := int64(3)
			if name == "rehashed" {
				want = 4 // the altered event is self-consistent; the next link breaks
			}
			if b.Seq != want {
				t.Fatalf("break reported at %d, want %d (%s)", b.Seq, want, b.Reason)
			}
		})
	}
}

func TestChainDetectsDeletionAndReorder(t *testing.T) {
	evs := chain(5)
	deleted := append(append([]Event{}, evs[:2]...), evs[3:]...)
	if b := VerifyChain(deleted); b == nil || b.Seq != 4 {
		t.Fatalf("deletion: %+v", b)
	}
	if b := VerifyChain(evs[1:]); b == nil || b.Seq != 2 {
		t.Fatalf("missing head: %+v", b)
	}
}
