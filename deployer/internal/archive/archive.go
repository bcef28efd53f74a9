// Package archive reads what clients upload to the deployer: a descriptor
// alone, or a code archive (tar.gz or zip) holding butter.yaml and the code,
// and unpacks stored archives for the process runtime.
//
// Archives are checked whole before anything is stored: not gzip, no
// butter.yaml, a path escaping the archive (../, absolute, links pointing
// out) or too much data are each an error naming the problem. Zip uploads
// are repacked as tar.gz so that one format is stored and unpacked.
package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"mime"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/buttercompass/butter/proto/control"
)

// Limits on an archive's content, against archive bombs: a few megabytes of
// gzip can expand to gigabytes.
const (
	// MaxUnpacked is the most bytes an archive may unpack to.
	MaxUnpacked = 128 << 20
	// MaxEntries is the most files and directories an archive may hold.
	MaxEntries = 20000
)

// Errors of Read and Extract; wrapped with the entry or media type at
// fault. Each says what the client should do instead.
var (
	ErrMediaType    = errors.New("unsupported Content-Type: send application/yaml or application/json for a descriptor, application/gzip or application/zip for an archive")
	ErrNotGzip      = errors.New("archive is not gzip: create it with tar -czf code.tgz -C dir .")
	ErrNotZip       = errors.New("archive is not a valid zip file")
	ErrBadTar       = errors.New("archive is not a valid tar inside its gzip")
	ErrNoDescriptor = errors.New("no " + control.DescriptorFile + " at the archive root: create the archive from inside the code directory (tar -czf code.tgz -C dir .)")
	ErrUnsafePath   = errors.New("archive entry escapes the archive (absolute path, .. or a link pointing out)")
	ErrEntryType    = errors.New("archive entry is not a file, directory or symlink")
	ErrPathConflict = errors.New("archive entries conflict")
	ErrTooBig       = fmt.Errorf("archive unpacks to more than %d MiB or %d entries", MaxUnpacked>>20, MaxEntries)
	ErrCodeTooBig   = control.ErrCodeTooBig
)

// Media types Read accepts.
const (
	TypeYAML    = "application/yaml"
	TypeJSON    = "application/json"
	TypeGzip    = "application/gzip"
	TypeTarGzip = "application/x-tar+gzip"
	TypeZip     = "application/zip"
)

// Upload is a checked upload.
type Upload struct {
	// Descriptor is the descriptor source: the body itself, or the
	// archive's butter.yaml.
	Descriptor []byte
	// Code is the code archive as tar.gz, nil for a descriptor alone.
	Code []byte
}

// Read checks body according to its Content-Type.
func Read(contentType string, body []byte) (Upload, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return Upload{}, fmt.Errorf("read upload of Content-Type %q: %w", contentType, ErrMediaType)
	}
	switch mt {
	case TypeYAML, "application/x-yaml", "text/yaml", "text/x-yaml", TypeJSON:
		return Upload{Descriptor: body}, nil
	case TypeGzip, "application/x-gzip", TypeTarGzip, "application/x-gtar", "application/x-compressed-tar":
		desc, err := check(body)
		if err != nil {
			return Upload{}, err
		}
		if len(body) > control.MaxCodeSize {
			return Upload{}, ErrCodeTooBig
		}
		return Upload{Descriptor: desc, Code: body}, nil
	case TypeZip, "application/x-zip-compressed":
		code, err := repackZip(body)
		if err != nil {
			return Upload{}, err
		}
		desc, err := check(code)
		if err != nil {
			return Upload{}, err
		}
		if len(code) > control.MaxCodeSize {
			return Upload{}, ErrCodeTooBig
		}
		return Upload{Descriptor: desc, Code: code}, nil
	}
	return Upload{}, fmt.Errorf("read upload of Content-Type %q: %w", mt, ErrMediaType)
}

// entry is one checked archive entry: name is clean, relative and inside.
type entry struct {
	hdr  *tar.Header
	name string
	body io.Reader
}

// walk calls fn for every entry of the tar.gz code after checking it.
func walk(code []byte, fn func(entry) error) error {
	zr, err := gzip.NewReader(bytes.NewReader(code))
	if err != nil {
		return ErrNotGzip
	}
	tr := tar.NewReader(zr)
	var total int64
	seen := tree{kinds: map[string]byte{}, through: map[string]bool{}}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
				return ErrNotGzip
			}
			return fmt.Errorf("%w: %v", ErrBadTar, err)
		}
		if n >= MaxEntries {
			return ErrTooBig
		}
		name, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
			if err := seen.add(name, hdr.Typeflag, hdr.Linkname); err != nil {
				return fmt.Errorf("%q: %w", hdr.Name, err)
			}
		case tar.TypeXGlobalHeader:
			continue
		default:
			return fmt.Errorf("%q: %w", hdr.Name, ErrEntryType)
		}
		total += max(hdr.Size, 0)
		if total > MaxUnpacked {
			return ErrTooBig
		}
		if name == "." {
			continue
		}
		if err := fn(entry{hdr: hdr, name: name, body: io.LimitReader(tr, hdr.Size)}); err != nil {
			return err
		}
	}
}

func cleanName(name string) (string, error) {
	if path.IsAbs(name) || strings.Contains(name, `\`) {
		return "", fmt.Errorf("%q: %w", name, ErrUnsafePath)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%q: %w", name, ErrUnsafePath)
		}
	}
	return path.Clean(name), nil
}

// tree is what the entries of an archive read so far make, so that the
// next one is checked against the filesystem it will be unpacked into,
// not only by its name: links are followed as the filesystem would.
type tree struct {
	kinds   map[string]byte // clean name → tar type flag; parents are dirs
	through map[string]bool // directories some link's target passes through
}

// add checks an entry and records it:
//   - nothing is unpacked through a link (it would land where the link
//     points, maybe outside);
//   - a name is one thing (a directory may be listed again);
//   - a link's target, followed from the link's directory one component at
//     a time, stays inside and passes through no link, also none made by a
//     later entry.
func (t tree) add(name string, typ byte, link string) error {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		dir := strings.Join(parts[:i], "/")
		switch t.kinds[dir] {
		case tar.TypeSymlink:
			return fmt.Errorf("%w: it is under the link %q", ErrUnsafePath, dir)
		case tar.TypeReg:
			return fmt.Errorf("%w: %q is a file, not a directory", ErrPathConflict, dir)
		}
		t.kinds[dir] = tar.TypeDir
	}
	if prev, ok := t.kinds[name]; ok && !(prev == tar.TypeDir && typ == tar.TypeDir) {
		return fmt.Errorf("%w: %q is in the archive twice", ErrPathConflict, name)
	}
	if typ == tar.TypeSymlink {
		if t.through[name] {
			return fmt.Errorf("%w: an earlier link's target passes through %q", ErrUnsafePath, name)
		}
		if err := t.follow(parts[:len(parts)-1], link); err != nil {
			return err
		}
	}
	t.kinds[name] = typ
	return nil
}

// follow resolves link from the directory dir, refusing a target that
// leaves the archive or passes through a link, and records the
// directories it passes through.
func (t tree) follow(dir []string, link string) error {
	if link == "" || path.IsAbs(link) || strings.Contains(link, `\`) {
		return fmt.Errorf("%w: link target %q", ErrUnsafePath, link)
	}
	at := append([]string(nil), dir...)
	comps := strings.Split(link, "/")
	for i, c := range comps {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(at) == 0 {
				return fmt.Errorf("%w: link target %q points out", ErrUnsafePath, link)
			}
			at = at[:len(at)-1]
			continue
		}
		at = append(at, c)
		if i == len(comps)-1 {
			break // the target itself may be anything inside, a link too
		}
		p := strings.Join(at, "/")
		if t.kinds[p] == tar.TypeSymlink {
			return fmt.Errorf("%w: link target %q passes through the link %q", ErrUnsafePath, link, p)
		}
		t.through[p] = true
	}
	return nil
}

// check walks the whole archive and returns its butter.yaml.
func check(code []byte) ([]byte, error) {
	var desc []byte
	err := walk(code, func(e entry) error {
		if e.name == control.DescriptorFile && e.hdr.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(e.body)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrBadTar, err)
			}
			desc = b
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if desc == nil {
		return nil, ErrNoDescriptor
	}
	return desc, nil
}

// repackZip turns a zip into the tar.gz that is stored.
func repackZip(body []byte) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return nil, ErrNotZip
	}
	if len(zr.File) > MaxEntries {
		return nil, ErrTooBig
	}
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	var total int64
	for _, f := range zr.File {
		name, err := cleanName(f.Name)
		if err != nil {
			return nil, err
		}
		mode := f.Mode()
		hdr := &tar.Header{Name: name, ModTime: f.Modified, Mode: int64(mode.Perm())}
		switch {
		case mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		case mode.IsRegular():
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(f.UncompressedSize64)
			if hdr.Mode == 0 {
				hdr.Mode = 0o644
			}
		default:
			return nil, fmt.Errorf("%q: %w", f.Name, ErrEntryType)
		}
		total += hdr.Size
		if total > MaxUnpacked || f.UncompressedSize64 > MaxUnpacked {
			return nil, ErrTooBig
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("repack zip entry %q: %w", f.Name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrNotZip, f.Name, err)
		}
		_, err = io.Copy(tw, io.LimitReader(rc, hdr.Size))
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrNotZip, f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("repack zip: %w", err)
	}
	if err := gw.Close(); err != nil {
		return nil, fmt.Errorf("repack zip: %w", err)
	}
	return buf.Bytes(), nil
}

// Extract unpacks the tar.gz code into dir, which it creates. It unpacks
// into a temporary sibling and renames it into place, so dir either holds
// a whole archive or does not exist.
func Extract(code []byte, dir string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	tmp, err := os.MkdirTemp(parent, ".unpack-")
	if err != nil {
		return fmt.Errorf("create unpack dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	err = walk(code, func(e entry) error {
		target := filepath.Join(tmp, filepath.FromSlash(e.name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			return os.MkdirAll(target, 0o755)
		case tar.TypeSymlink:
			return os.Symlink(e.hdr.Linkname, target)
		}
		perm := fs.FileMode(e.hdr.Mode).Perm() | 0o600
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, e.body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return fmt.Errorf("unpack code into %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("unpack code into %s: %w", dir, err)
	}
	return nil
}

// TarGz builds a tar.gz of files (name → content), for tests and for
// clients that pack a directory. Names ending in "/" are directories.
func TarGz(files map[string]string) []byte {
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if strings.HasSuffix(name, "/") {
			hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeDir, 0, 0o755
		}
		_ = tw.WriteHeader(hdr)
		if hdr.Typeflag == tar.TypeReg {
			_, _ = tw.Write([]byte(body))
		}
	}
	_ = tw.Close()
	_ = gw.Close()
	return buf.Bytes()
}
