// Command gateway serves the seed's HTTP gateway: POST /start, POST /transfer,
// GET /result/{workflow_id}.
package main

import (
	"flag"
	"log"
	"net/http"

	"go.temporal.io/sdk/client"

	"tempora.dev/compat/go/seed"
)

func main() {
	address := flag.String("address", "127.0.0.1:7233", "the server (tempora or Temporal), host:port")
	namespace := flag.String("namespace", "default", "the namespace")
	listen := flag.String("listen", ":8091", "where to listen for HTTP")
	flag.Parse()

	c, err := client.Dial(client.Options{HostPort: *address, Namespace: *namespace})
	if err != nil {
		log.Fatalf("connect to %s: %v", *address, err)
	}
	defer c.Close()

	gateway := &seed.Gateway{Client: c}
	log.Printf("gateway listening on http://%s", *listen)
	log.Fatal(http.ListenAndServe(*listen, gateway.Handler()))
}
