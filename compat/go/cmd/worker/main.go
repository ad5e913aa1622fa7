// Command worker registers the seed's workflows and activities on your-custom-task-queue-name
// and polls until interrupted.
package main

import (
	"flag"
	"log"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"tempora.dev/compat/go/seed"
)

func main() {
	address := flag.String("address", "127.0.0.1:7233", "the server (tempora or Temporal), host:port")
	namespace := flag.String("namespace", "default", "the namespace")
	message := flag.String("message", "Hello", "the message the activities hold")
	number := flag.Int("number", 42, "the number the activities hold")
	flag.Parse()

	c, err := client.Dial(client.Options{HostPort: *address, Namespace: *namespace})
	if err != nil {
		log.Fatalf("connect to %s: %v", *address, err)
	}
	defer c.Close()

	w := worker.New(c, seed.TaskQueue, worker.Options{})
	seed.Register(w, &seed.YourActivityObject{Message: *message, Number: *number}, seed.NewBank(), seed.DefaultSaga())
	log.Printf("worker polling %s on %s", seed.TaskQueue, *address)
	if err := w.Run(worker.InterruptCh()); err != nil {
		log.Fatalf("worker: %v", err)
	}
}
