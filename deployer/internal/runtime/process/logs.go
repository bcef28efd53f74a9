package process

import (
	"bufio"
	"io"
	"os"
	"strings"
	"time"

	"github.com/buttercompass/butter/proto/kit"
)

// tail copies the log file at path of an instance or a pool, from offset
// from, into the deployer's log line by line until the process is gone and
// the file drained, or Close.
func (r *Runtime) tail(p *proc, path string, from int64) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		f.Close()
		return
	}
	log := r.log.With(kit.KeyDeployment, p.rec.Deployment, "instance", p.rec.ID)
	r.tails.Add(1)
	go func() {
		defer r.tails.Done()
		defer f.Close()
		br := bufio.NewReader(f)
		var partial string
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			line, err := br.ReadString('\n')
			partial += line
			if err == nil {
				log.Info(strings.TrimRight(partial, "\r\n"), "source", "fnbox")
				partial = ""
				continue
			}
			select {
			case <-p.done:
				// Drain what the process wrote before it went.
				if rest, _ := io.ReadAll(br); len(rest) > 0 || partial != "" {
					for _, l := range strings.Split(strings.TrimRight(partial+string(rest), "\n"), "\n") {
						log.Info(l, "source", "fnbox")
					}
				}
				return
			case <-r.tailStop:
				return
			case <-tick.C:
			}
		}
	}()
}

// lastLine returns the last line an instance printed (fnbox's own error),
// reading only the log's tail.
func lastLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "fnbox could not load the function code"
	}
	defer f.Close()
	buf := make([]byte, 4096)
	st, _ := f.Stat()
	off := max(0, st.Size()-int64(len(buf)))
	n, _ := f.ReadAt(buf, off)
	lines := strings.Split(strings.TrimSpace(string(buf[:n])), "\n")
	return strings.TrimPrefix(lines[len(lines)-1], "fnbox: ")
}
