package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/muster-iot/muster/client"
)

func Example() {
	ctx := context.Background()
	c, err := client.New("https://muster.example:8443",
		client.WithToken("mst_..."),
		client.WithCAFile("muster-data/ca.pem"),
		client.WithRetry(5, 200*time.Millisecond),
	)
	if err != nil {
		log.Fatal(err)
	}

	d, err := c.CreateDevice(ctx, client.DeviceInput{
		Identity: client.Identity{Factory: "acme", Model: "sensor-x", Serial: "SN-0001"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// A refused lifecycle move says which moves are allowed.
	if _, err := c.SetState(ctx, d.ID, client.StateActive, "installed"); err != nil {
		var apiErr *client.APIError
		if errors.As(err, &apiErr) && apiErr.Code == client.CodeInvalidTransition {
			fmt.Println("allowed next states:", apiErr.Allowed)
		}
	}

	// Every active device of the model, across all pages.
	for d, err := range c.Devices(ctx, client.DeviceFilter{Model: "sensor-x", State: client.StateActive}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(d.ID, d.Identity.Serial)
	}
}
