package control

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/topics"
)

// MaxCodeSize is the largest code archive (tar.gz) a deployment may carry.
// Bigger code belongs in a container image (platform: image).
const MaxCodeSize = 8 << 20

// MaxRecordBytes bounds one _butter.deployments record: MaxCodeSize grows
// by a third in base64, plus the descriptor (descriptor.MaxSize) and the
// other fields. Kafka's default max.message.bytes (1 MiB) is far below it,
// so the deployments topic is given this as its max.message.bytes
// (DeploymentsTopicConfigs) and producers of the record raise their batch
// limit to it (kgo.ProducerBatchMaxBytes); consumers raise
// kgo.FetchMaxPartitionBytes to it.
const MaxRecordBytes = 16 << 20

// DescriptorFile is the descriptor's file name inside a code archive and
// in an unpacked deployment directory.
const DescriptorFile = "butter.yaml"

// Deployment is the desired state of one deployment: the JSON value of a
// _butter.deployments record whose key is Name. A record with a nil value
// (a tombstone) means the deployment was deleted.
type Deployment struct {
	// Name is the deployment name, equal to the descriptor's name and to
	// the record key.
	Name string `json:"name"`
	// Version is the descriptor's version, else ContentVersion of the
	// descriptor and code.
	Version string `json:"version"`
	// Descriptor is the descriptor source (YAML or JSON) exactly as
	// submitted. Parse re-derives the parsed descriptor from it.
	Descriptor string `json:"descriptor"`
	// Code is the code archive, a tar.gz holding butter.yaml and the code,
	// at most MaxCodeSize bytes; base64 in JSON. Empty for a deployment
	// submitted as a descriptor alone (platform image, or commands found
	// on the host).
	Code []byte `json:"code,omitempty"`
	// Created is when the deployment was first stored.
	Created time.Time `json:"created"`
	// Updated is when this version of the record was stored.
	Updated time.Time `json:"updated"`
	// Actor is who stored this version (see ExtActor).
	Actor string `json:"actor"`
}

// Errors of DecodeDeployment and Deployment.Validate.
var (
	// ErrCodeTooBig means the code archive is over MaxCodeSize.
	ErrCodeTooBig = fmt.Errorf("code archive is over %d MiB: ship big code as a container image (platform: image)", MaxCodeSize>>20)
	// ErrNameMismatch means the record key, the Name field and the
	// descriptor's name disagree.
	ErrNameMismatch = errors.New("deployment name does not match the descriptor's name")
)

// DescriptorFilename labels problems of a stored descriptor, so they read
// "orders/butter.yaml:3:5 ...".
func (d Deployment) DescriptorFilename() string { return d.Name + "/" + DescriptorFile }

// Parse parses the stored descriptor. A record written by the deployer
// always parses; an error means a hand-written or corrupt record.
func (d Deployment) Parse() (*descriptor.Descriptor, error) {
	desc, err := descriptor.Parse(d.DescriptorFilename(), []byte(d.Descriptor))
	if err != nil {
		return nil, fmt.Errorf("parse descriptor of deployment %q: %w", d.Name, err)
	}
	if desc.Name != d.Name {
		return nil, fmt.Errorf("deployment %q holds a descriptor named %q: %w", d.Name, desc.Name, ErrNameMismatch)
	}
	return desc, nil
}

// Validate checks what a reader relies on: a parsable descriptor of the
// same name, a version and code within MaxCodeSize.
func (d Deployment) Validate() error {
	if len(d.Code) > MaxCodeSize {
		return fmt.Errorf("validate deployment %q: %w", d.Name, ErrCodeTooBig)
	}
	if d.Version == "" {
		return fmt.Errorf("validate deployment %q: no version", d.Name)
	}
	_, err := d.Parse()
	return err
}

// ContentVersion is the version of a deployment whose descriptor gives
// none: the first 12 hex digits of the SHA-256 of the descriptor source
// and the code, so the same content always gets the same version.
func ContentVersion(descriptorSource string, code []byte) string {
	h := sha256.New()
	// Length-prefix the descriptor so moving bytes between the two parts
	// changes the hash.
	h.Write([]byte(strconv.Itoa(len(descriptorSource)) + ":"))
	h.Write([]byte(descriptorSource))
	h.Write(code)
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// DeploymentRecord returns the record storing d on topic (the namespaced
// _butter.deployments).
func DeploymentRecord(topic string, d Deployment) (*kgo.Record, error) {
	v, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode deployment %q: %w", d.Name, err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(d.Name), Value: v}, nil
}

// DeploymentTombstone returns the record deleting deployment name.
func DeploymentTombstone(topic, name string) *kgo.Record {
	return &kgo.Record{Topic: topic, Key: []byte(name)}
}

// DecodeDeployment decodes a _butter.deployments record. deleted is true
// for a tombstone, with d holding only the name.
func DecodeDeployment(r *kgo.Record) (d Deployment, deleted bool, err error) {
	name := string(r.Key)
	if r.Value == nil {
		return Deployment{Name: name}, true, nil
	}
	if err := json.Unmarshal(r.Value, &d); err != nil {
		return Deployment{}, false, fmt.Errorf("decode deployment record %q at offset %d: %w", name, r.Offset, err)
	}
	if d.Name != name {
		return Deployment{}, false, fmt.Errorf("decode deployment record %q at offset %d: value names %q: %w", name, r.Offset, d.Name, ErrNameMismatch)
	}
	return d, false, nil
}

// DeploymentsTopicConfigs returns the topic configs the deployments topic
// needs beyond its topics.Spec: a max.message.bytes that fits a record
// with a full-size code archive.
func DeploymentsTopicConfigs() map[string]string {
	return map[string]string{"max.message.bytes": strconv.Itoa(MaxRecordBytes)}
}

// DeploymentsSpec returns the spec of _butter.deployments from
// topics.Internal, for services that create it.
func DeploymentsSpec() topics.Spec {
	for _, s := range topics.Internal() {
		if s.Name == topics.Deployments {
			return s
		}
	}
	return topics.Spec{Name: topics.Deployments, Partitions: 1, Compact: true, Retention: topics.Forever}
}

// ExitCodeLoadError is the exit status of an fnbox whose function code
// failed to load (a syntax error, a missing export, a command that does not
// exist). Restarting cannot fix it, so the deployer reports it as the
// deployment's error and stops restarting that version. 78 is sysexits'
// EX_CONFIG.
const ExitCodeLoadError = 78

// ReadyMessage is the msg of the info log line fnbox writes once its
// functions' code is loaded and every consumer group joined. It is for
// people reading logs: at BUTTER_LOG_LEVEL=warn it is not written, so
// nothing may wait for it. Programs wait for the ready file (ReadyFileFlag)
// or poll fnbox's /readyz.
const ReadyMessage = "fnbox ready"

// Readiness and lifetime of an fnbox instance, shared by fnbox and the
// deployer that starts it.
const (
	// ReadyFileFlag is fnbox's flag (env ReadyFileEnv) naming a file it
	// creates, atomically, once its functions' code is loaded and every
	// consumer group joined; the file holds a ReadyFile. Until it exists
	// the instance is starting, not running. A channel of its own, not a
	// log line: it works at any log level and survives a deployer restart.
	ReadyFileFlag = "ready-file"
	// ReadyFileEnv is the env fallback of ReadyFileFlag.
	ReadyFileEnv = "BUTTER_READY_FILE"
	// OrphanGraceFlag is fnbox's flag (env OrphanGraceEnv): how long its
	// broker may be unreachable, or its deployment absent from
	// _butter.deployments, before fnbox exits by itself (status
	// ExitCodeOrphan). 0 never exits.
	OrphanGraceFlag = "orphan-grace"
	// OrphanGraceEnv is the env fallback of OrphanGraceFlag.
	OrphanGraceEnv = "BUTTER_ORPHAN_GRACE"
	// ExitCodeOrphan is the exit status of an fnbox that exited because its
	// broker or deployment was gone for longer than the orphan grace.
	// 69 is sysexits' EX_UNAVAILABLE.
	ExitCodeOrphan = 69
)

// ReadyFile is the content of an fnbox's ready file (JSON).
type ReadyFile struct {
	// PID is the fnbox process.
	PID int `json:"pid"`
	// Instance is its instance id.
	Instance string `json:"instance"`
	// Admin is the address of its /livez, /readyz and /metrics.
	Admin string `json:"admin"`
}
