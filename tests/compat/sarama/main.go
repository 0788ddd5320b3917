// sarama-check: Sarama (Shopify/IBM's pure-Go Kafka client, Debian's golang-github-shopify-sarama-dev) against a
// rill broker: its admin creates and describes a topic, an idempotent producer with acks=all sends 200 keyed
// records with each codec, a partition consumer reads every one back, and a consumer group of two members
// reads them all and commits. Run by test_kafka_sarama.py; prints what it did, exits 1 naming what failed.
// Usage: sarama-check BOOTSTRAP TOPIC GROUP
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

const partitions = 3
const perCodec = 200

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "sarama-check: %s: %v\n", what, err)
	os.Exit(1)
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_1_0_0
	c.ClientID = "sarama-check"
	// Sarama 1.22 commits with OffsetCommit v1 (gone in Kafka 4 and never served by rill) unless a retention
	// is set, which makes it v2.
	c.Consumer.Offsets.Retention = 24 * time.Hour
	return c
}

func produce(brokers []string, topic string) map[string]bool {
	codecs := []struct {
		name  string
		codec sarama.CompressionCodec
	}{{"none", sarama.CompressionNone}, {"gzip", sarama.CompressionGZIP}, {"snappy", sarama.CompressionSnappy},
		{"lz4", sarama.CompressionLZ4}, {"zstd", sarama.CompressionZSTD}}
	sent := map[string]bool{}
	for _, codec := range codecs {
		c := config()
		c.Producer.Idempotent = true
		c.Producer.RequiredAcks = sarama.WaitForAll
		c.Producer.Return.Successes = true
		c.Net.MaxOpenRequests = 1
		c.Producer.Compression = codec.codec
		producer, err := sarama.NewSyncProducer(brokers, c)
		if err != nil {
			fail("idempotent producer", err)
		}
		var messages []*sarama.ProducerMessage
		for i := 0; i < perCodec; i++ {
			value := fmt.Sprintf("%s-%d", codec.name, i)
			sent[value] = true
			messages = append(messages, &sarama.ProducerMessage{Topic: topic,
				Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder(value)})
		}
		if err := producer.SendMessages(messages); err != nil {
			if errs, ok := err.(sarama.ProducerErrors); ok && len(errs) > 0 {
				err = errs[0].Err
			}
			fail("send with "+codec.name, err)
		}
		if err := producer.Close(); err != nil {
			fail("close the producer", err)
		}
		fmt.Printf("produced %d with %s\n", perCodec, codec.name)
	}
	return sent
}

// Reads every partition from its oldest offset to its newest, each value once.
func consume(brokers []string, topic string, sent map[string]bool) {
	client, err := sarama.NewClient(brokers, config())
	if err != nil {
		fail("client", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		fail("consumer", err)
	}
	read := map[string]bool{}
	for partition := int32(0); partition < partitions; partition++ {
		end, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
		if err != nil {
			fail("newest offset", err)
		}
		if end == 0 {
			continue
		}
		claim, err := consumer.ConsumePartition(topic, partition, sarama.OffsetOldest)
		if err != nil {
			fail("consume a partition", err)
		}
		for message := range claim.Messages() {
			value := string(message.Value)
			if !sent[value] || read[value] {
				fail("consume", fmt.Errorf("%q at offset %d was not sent, or read twice", value, message.Offset))
			}
			read[value] = true
			if message.Offset == end-1 {
				break
			}
		}
		claim.Close()
	}
	if len(read) != len(sent) {
		fail("consume", fmt.Errorf("read %d of the %d records sent", len(read), len(sent)))
	}
	fmt.Printf("consumed %d\n", len(read))
}

type member struct {
	mu   *sync.Mutex
	seen map[string]bool
}

func (m member) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (m member) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (m member) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for message := range claim.Messages() {
		m.mu.Lock()
		m.seen[string(message.Value)] = true
		m.mu.Unlock()
		session.MarkMessage(message, "")
	}
	return nil
}

// Two members split the topic, read it all and commit; the commits are then read back by the admin.
func group(brokers []string, topic, name string, total int) {
	var mu sync.Mutex
	seen := map[string]bool{}
	ctx, stop := context.WithCancel(context.Background())
	var members sync.WaitGroup
	for i := 0; i < 2; i++ {
		c := config()
		c.Consumer.Offsets.Initial = sarama.OffsetOldest
		c.Consumer.Offsets.CommitInterval = 100 * time.Millisecond
		g, err := sarama.NewConsumerGroup(brokers, name, c)
		if err != nil {
			fail("consumer group", err)
		}
		members.Add(1)
		go func() {
			defer members.Done()
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{topic}, member{&mu, seen}); err != nil && ctx.Err() == nil {
					fmt.Fprintln(os.Stderr, "sarama-check: a group session ended:", err)
					time.Sleep(100 * time.Millisecond)
				}
			}
			g.Close() // commits what was marked
		}()
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		count := len(seen)
		mu.Unlock()
		if count == total {
			break
		}
		if time.Now().After(deadline) {
			fail("group", fmt.Errorf("the members read %d of %d records within 60 s", count, total))
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	members.Wait()
	fmt.Printf("group read %d\n", total)

	admin, err := sarama.NewClusterAdmin(brokers, config())
	if err != nil {
		fail("admin", err)
	}
	defer admin.Close()
	committed, err := admin.ListConsumerGroupOffsets(name, map[string][]int32{topic: {0, 1, 2}})
	if err != nil {
		fail("the group's offsets", err)
	}
	sum := int64(0)
	for _, block := range committed.Blocks[topic] {
		sum += block.Offset
	}
	if sum != int64(total) {
		fail("the group's offsets", fmt.Errorf("committed offsets add up to %d, not %d", sum, total))
	}
	fmt.Printf("committed %d\n", sum)
}

func main() {
	if len(os.Args) != 4 {
		fail("usage", fmt.Errorf("sarama-check BOOTSTRAP TOPIC GROUP"))
	}
	brokers, topic, name := strings.Split(os.Args[1], ","), os.Args[2], os.Args[3]
	go func() {
		time.Sleep(100 * time.Second)
		fail("deadline", fmt.Errorf("not done within 100 s"))
	}()
	admin, err := sarama.NewClusterAdmin(brokers, config())
	if err != nil {
		fail("admin", err)
	}
	detail := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}
	if err := admin.CreateTopic(topic, detail, false); err != nil {
		fail("create the topic", err)
	}
	described, err := admin.DescribeTopics([]string{topic})
	if err != nil || len(described) != 1 || len(described[0].Partitions) != partitions {
		fail("describe the topic", fmt.Errorf("%v (%v)", described, err))
	}
	admin.Close()
	fmt.Printf("created %s with %d partitions\n", topic, partitions)
	sent := produce(brokers, topic)
	consume(brokers, topic, sent)
	group(brokers, topic, name, len(sent))
}
