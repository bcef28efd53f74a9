package commands

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"sigs.k8s.io/yaml"

	"github.com/buttercompass/butter/proto/descriptor"
	"github.com/buttercompass/butter/proto/obs"
	"github.com/buttercompass/butter/proto/topics"
)

func (a *app) deployCmd() *cobra.Command {
	var (
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "deploy PATH",
		Short: "Deploy a descriptor, a directory holding butter.yaml, or an archive",
		Long: `Deploy a function: PATH is a descriptor (butter.yaml), a directory holding
butter.yaml and the code, or a .tar.gz/.zip archive of such a directory. The
descriptor is checked locally first; a deployment of the same name is
replaced. Progress is shown until every function has its instances running
(--wait=false returns at once).`,
		Example: `  butter deploy examples/hello
  butter deploy build/orders.tar.gz --wait=false`,
		Args: cobra.ExactArgs(1),
		RunE: nil, // set below, it needs the client
	}
	c := a.deployerFlags(cmd)
	cmd.Flags().BoolVar(&wait, "wait", true, "wait until instances are running")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long --wait waits")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		pkg, err := packDeployment(args[0])
		if err != nil {
			return err
		}
		// What runs now, to say what this deploy replaces.
		var old deploymentStatus
		if _, err := c.do(cmd.Context(), "GET", "/v1/deployments/"+pkg.name, "", nil, &old); err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusNotFound {
				return err
			}
		}
		var st deploymentStatus
		stop := a.progress(pkg)
		_, err = c.do(cmd.Context(), "PUT", "/v1/deployments/"+pkg.name, pkg.contentType, pkg.body, &st)
		stop()
		if err != nil {
			return err
		}
		switch {
		case old.Version == "":
			fmt.Fprintf(a.io.Out, "deployed %s version %s (%s)\n", st.Name, st.Version, plural(len(st.Functions), "function"))
		case old.Version == st.Version:
			fmt.Fprintf(a.io.Out, "deployed %s version %s again (unchanged)\n", st.Name, st.Version)
		default:
			fmt.Fprintf(a.io.Out, "deployed %s: replaced version %s with %s\n", st.Name, old.Version, st.Version)
		}
		if !wait {
			return nil
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
		defer cancel()
		return a.waitRunning(ctx, c, pkg.name)
	}
	return cmd
}

// progress says on stderr, every few seconds, that the deployer is still
// at it: a go function is compiled before the deployer answers, which on a
// cold build cache takes minutes. It returns the function that stops it.
func (a *app) progress(pkg deploymentPackage) (stop func()) {
	what := "the deployer is checking and storing " + pkg.name
	if pkg.platform == descriptor.PlatformGo {
		what = "the deployer is building " + pkg.name + "'s go code (the first build compiles the standard library into its cache)"
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(a.io.Err, "%s: %s\n", what, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() { close(done); <-finished }
}

// waitRunning polls the deployment's status until every function runs its
// desired instances, printing each change.
func (a *app) waitRunning(ctx context.Context, c *apiClient, name string) error {
	last := ""
	for {
		var st deploymentStatus
		if _, err := c.do(ctx, "GET", "/v1/deployments/"+name, "", nil, &st); err != nil {
			return err
		}
		ready, line := true, ""
		for _, f := range st.Functions {
			if f.Broken {
				return fmt.Errorf("%s version %s cannot start: function %s: %s", name, st.Version, f.Name, f.LastError)
			}
			line += fmt.Sprintf("  %s %d/%d", f.Name, f.Running, f.Desired)
			if f.LastError != "" {
				line += " (" + f.LastError + ")"
			}
			ready = ready && f.Running >= f.Desired
		}
		if line != last {
			fmt.Fprintln(a.io.Out, strings.TrimSpace(line))
			last = line
		}
		if ready {
			fmt.Fprintf(a.io.Out, "%s is running\n", name)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s is not running yet: %s", name, strings.TrimSpace(last))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// deploymentPackage is what deploy sends.
type deploymentPackage struct {
	name        string
	platform    string
	contentType string
	body        []byte
}

// packDeployment reads PATH as a descriptor file, a directory or an
// archive, checks its descriptor locally and returns the request body.
func packDeployment(path string) (deploymentPackage, error) {
	st, err := os.Stat(path)
	if err != nil {
		return deploymentPackage{}, fmt.Errorf("deploy %s: %w", path, err)
	}
	var pkg deploymentPackage
	var desc []byte
	if !st.IsDir() && filepath.Base(path) == "butter.yaml" {
		// The descriptor of a code directory: deploy the directory, as
		// `butter fn test` runs it, not the descriptor without its code.
		path = filepath.Dir(path)
		st, _ = os.Stat(path)
	}
	descName := filepath.Join(path, "butter.yaml")
	switch {
	case st != nil && st.IsDir():
		if pkg.body, desc, err = tarGzDir(path); err != nil {
			return pkg, err
		}
		pkg.contentType = "application/gzip"
	case strings.HasSuffix(path, ".tar.gz"), strings.HasSuffix(path, ".tgz"):
		if pkg.body, err = os.ReadFile(path); err != nil {
			return pkg, err
		}
		desc, err = descriptorFromTarGz(pkg.body)
		pkg.contentType, descName = "application/gzip", path+"!butter.yaml"
	case strings.HasSuffix(path, ".zip"):
		if pkg.body, err = os.ReadFile(path); err != nil {
			return pkg, err
		}
		desc, err = descriptorFromZip(pkg.body)
		pkg.contentType, descName = "application/zip", path+"!butter.yaml"
	default:
		if desc, err = os.ReadFile(path); err != nil {
			return pkg, err
		}
		pkg.body, pkg.contentType, descName = desc, "application/yaml", path
	}
	if err != nil {
		return pkg, fmt.Errorf("deploy %s: %w", path, err)
	}
	d, err := descriptor.Parse(descName, desc)
	if err != nil {
		return pkg, err
	}
	pkg.name, pkg.platform = d.Name, d.Platform
	return pkg, nil
}

// tarGzDir packs a directory (which must hold butter.yaml) as tar.gz.
func tarGzDir(dir string) (archive, desc []byte, err error) {
	if desc, err = os.ReadFile(filepath.Join(dir, "butter.yaml")); err != nil {
		return nil, nil, fmt.Errorf("deploy %s: no butter.yaml in the directory: %w", dir, err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." && strings.HasPrefix(d.Name(), ".") {
			// Hidden files and directories stay home: .git, .env, .npmrc.
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var link string
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			// Sent as a link; the deployer refuses one pointing out.
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		case !d.Type().IsRegular():
			return fmt.Errorf("deploy %s: %s is not a file, directory or symlink", dir, rel)
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if link != "" {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = errors.Join(tw.Close(), gz.Close())
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	return buf.Bytes(), desc, nil
}

func descriptorFromTarGz(data []byte) ([]byte, error) {
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a gzip archive: %w", err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("the archive holds no butter.yaml at its root")
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %w", err)
		}
		if strings.TrimPrefix(hdr.Name, "./") == "butter.yaml" {
			return io.ReadAll(tr)
		}
	}
}

func descriptorFromZip(data []byte) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("not a zip archive: %w", err)
	}
	f, err := zr.Open("butter.yaml")
	if err != nil {
		return nil, errors.New("the archive holds no butter.yaml at its root")
	}
	defer f.Close()
	return io.ReadAll(f)
}

func (a *app) lsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{Use: "ls", Short: "List deployments and their running instances", Args: cobra.NoArgs}
	c := a.deployerFlags(cmd)
	outputFlag(cmd, &output)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkFormat(output); err != nil {
			return err
		}
		var list struct {
			Deployments []json.RawMessage `json:"deployments"`
		}
		if _, err := c.do(cmd.Context(), "GET", "/v1/deployments", "", nil, &list); err != nil {
			return err
		}
		if list.Deployments == nil {
			list.Deployments = []json.RawMessage{}
		}
		if output != "text" {
			// Every field the deployer answers, not only the table's.
			return a.printData(output, list.Deployments, nil)
		}
		tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DEPLOYMENT\tVERSION\tPLATFORM\tFUNCTIONS (running/desired)\tUPDATED")
		for _, raw := range list.Deployments {
			var d deploymentStatus
			if err := json.Unmarshal(raw, &d); err != nil {
				return fmt.Errorf("decode the deployer's answer: %w", err)
			}
			var fns []string
			for _, f := range d.Functions {
				fns = append(fns, fmt.Sprintf("%s %d/%d", f.Name, f.Running, f.Desired))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, d.Version, d.Platform, strings.Join(fns, ", "), d.Updated.Format(time.RFC3339))
		}
		return tw.Flush()
	}
	return cmd
}

func (a *app) getCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{Use: "get NAME", Short: "Show one deployment's status", Args: cobra.ExactArgs(1),
		Long: `Show one deployment's status. Per function: desired instances (loadmon's
latest decision within scale.min and scale.max, else min), running
instances, the decision behind it (scaled: from, to, reason, lag then) and
the consumer lag now, read from Kafka (lag; left out when Kafka cannot be
reached).`}
	c := a.deployerFlags(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "json or yaml")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkFormat(output, "json", "yaml"); err != nil {
			return err
		}
		var raw json.RawMessage
		if _, err := c.do(cmd.Context(), "GET", "/v1/deployments/"+args[0], "", nil, &raw); err != nil {
			return unknown(err, "deployment", args[0], "butter ls")
		}
		raw = a.withAdmins(cmd.Context(), a.withLag(cmd.Context(), raw))
		if output == "json" {
			var buf bytes.Buffer
			_ = json.Indent(&buf, raw, "", "  ")
			fmt.Fprintln(a.io.Out, buf.String())
			return nil
		}
		y, err := yaml.JSONToYAML(raw)
		if err != nil {
			return fmt.Errorf("show %s as yaml: %w", args[0], err)
		}
		_, err = a.io.Out.Write(y)
		return err
	}
	return cmd
}

func (a *app) rmCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rm NAME", Short: "Delete a deployment and stop its instances", Args: cobra.ExactArgs(1)}
	c := a.deployerFlags(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if _, err := c.do(cmd.Context(), "DELETE", "/v1/deployments/"+args[0], "", nil, nil); err != nil {
			return unknown(err, "deployment", args[0], "butter ls")
		}
		fmt.Fprintf(a.io.Out, "deleted %s\n", args[0])
		return nil
	}
	return cmd
}

func (a *app) replayCmd() *cobra.Command {
	var stream, from string
	cmd := &cobra.Command{
		Use:   "replay DEPLOYMENT[/FUNCTION] --from first|N|TIME",
		Short: "Reset a function's consumer group and reprocess a stream",
		Long: `Reset the consumer group of a deployment's functions (or one function) on a
stream to a position, then let them reprocess from there. The instances are
stopped while the group is reset and started again after.`,
		Example: `  butter replay orders --stream orders --from first
  butter replay orders/on-order --stream orders --from 2026-11-23T08:00:00Z`,
		Args: cobra.ExactArgs(1),
	}
	c := a.deployerFlags(cmd)
	cmd.Flags().StringVar(&stream, "stream", "", "the stream to replay (default: every bound stream)")
	cmd.Flags().StringVar(&from, "from", "", "first, an offset, or an RFC 3339 time (required)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if from == "" {
			return errors.New("--from is required: first, an offset, or an RFC 3339 time")
		}
		if _, err := parseFrom(from); err != nil {
			return err
		}
		dep, fn, _ := strings.Cut(args[0], "/")
		body, _ := json.Marshal(map[string]string{"function": fn, "stream": stream, "from": from})
		var res struct {
			Groups []struct {
				Group      string          `json:"group"`
				Stream     string          `json:"stream"`
				Partitions map[int32]int64 `json:"partitions"`
			} `json:"groups"`
		}
		if _, err := c.do(cmd.Context(), "POST", "/v1/deployments/"+dep+"/replay", "application/json", body, &res); err != nil {
			return unknown(err, "deployment", dep, "butter ls")
		}
		for _, g := range res.Groups {
			parts := make([]int32, 0, len(g.Partitions))
			for p := range g.Partitions {
				parts = append(parts, p)
			}
			slices.Sort(parts)
			var at []string
			for _, p := range parts {
				at = append(at, fmt.Sprintf("partition %d at %d", p, g.Partitions[p]))
			}
			fmt.Fprintf(a.io.Out, "reset %s on %s: %s\n", g.Group, g.Stream, strings.Join(at, ", "))
		}
		return nil
	}
	return cmd
}

// withLag adds each function's consumer lag now ("lag") to a deployment's
// status. Lag is read from Kafka, not from the deployer; when Kafka cannot
// be reached within a few seconds the status is shown without it.
func (a *app) withLag(ctx context.Context, raw json.RawMessage) json.RawMessage {
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		return raw
	}
	name, _ := st["name"].(string)
	fns, _ := st["functions"].([]any)
	if name == "" || len(fns) == 0 {
		return raw
	}
	adm, err := a.admin()
	if err != nil {
		fmt.Fprintf(a.io.Err, "lag left out: %v\n", err)
		return raw
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ns := a.kafka.Namespace()
	groups := map[string]map[string]any{}
	var names []string
	for _, f := range fns {
		m, _ := f.(map[string]any)
		fn, _ := m["name"].(string)
		if fn == "" {
			continue
		}
		g := ns.ConsumerGroup(name, fn)
		groups[g] = m
		names = append(names, g)
	}
	lags, err := adm.Lag(ctx, names...)
	if err != nil {
		fmt.Fprintf(a.io.Err, "lag left out: read consumer lag: %v\n", err)
		return raw
	}
	for g, m := range groups {
		if l, ok := lags[g]; ok && l.FetchErr == nil {
			m["lag"] = l.Lag.Total()
		}
	}
	out, err := json.Marshal(st)
	if err != nil {
		return raw
	}
	return out
}

// withAdmins adds each running instance's admin address ("admin": where
// its /metrics is served) to a deployment's status, from the instances'
// latest heartbeats on _butter.heartbeats. Instances without a recent
// heartbeat are left as they are.
func (a *app) withAdmins(ctx context.Context, raw json.RawMessage) json.RawMessage {
	var st map[string]any
	if err := json.Unmarshal(raw, &st); err != nil {
		return raw
	}
	name, _ := st["name"].(string)
	insts, _ := st["instances"].([]any)
	if name == "" || len(insts) == 0 {
		return raw
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adm, err := a.admin()
	if err != nil {
		return raw
	}
	topic := a.kafka.Namespace().Topic(topics.Heartbeats)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil || ends.Error() != nil {
		return raw
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	// Three heartbeat intervals back: every live instance has beaten since.
	starts, err := adm.ListOffsetsAfterMilli(ctx, time.Now().Add(-3*obs.HeartbeatInterval).UnixMilli(), topic)
	if err != nil || starts.Error() != nil {
		return raw
	}
	offs := map[int32]kgo.Offset{}
	starts.Each(func(o kadm.ListedOffset) {
		if end, ok := left[o.Partition]; ok && o.Offset < end {
			offs[o.Partition] = kgo.NewOffset().At(o.Offset)
		} else {
			delete(left, o.Partition)
		}
	})
	if len(offs) == 0 {
		return raw
	}
	cl, err := a.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}))
	if err != nil {
		return raw
	}
	admins := map[string]string{}
	for len(left) > 0 && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
			h, err := obs.ParseHeartbeat(r)
			if err != nil || h.Deployment != name {
				return
			}
			if h.Stopping || h.Admin == "" {
				delete(admins, h.Instance)
				return
			}
			admins[h.Instance] = h.Admin
		})
	}
	for _, i := range insts {
		m, _ := i.(map[string]any)
		id, _ := m["id"].(string)
		if addr, ok := admins[id]; ok && m != nil {
			m["admin"] = addr
		}
	}
	out, err := json.Marshal(st)
	if err != nil {
		return raw
	}
	return out
}
