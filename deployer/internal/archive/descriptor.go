package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/buttercompass/butter/proto/control"
)

// WithDescriptor returns the tar.gz code with its root butter.yaml
// replaced by desc and every other entry copied as it is. The deployer
// stores the descriptor with its secrets sealed; the archive's copy,
// stored beside it, must not keep them in plain text. The same code and
// desc always give the same bytes, so a content version stays the same.
func WithDescriptor(code, desc []byte) ([]byte, error) {
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	replaced := false
	err := walk(code, func(e entry) error {
		hdr := *e.hdr
		var body io.Reader = e.body
		if e.name == control.DescriptorFile && hdr.Typeflag == tar.TypeReg {
			hdr.Size, body, replaced = int64(len(desc)), bytes.NewReader(desc), true
			delete(hdr.PAXRecords, "size")
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.Copy(tw, body); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil && !replaced {
		err = ErrNoDescriptor
	}
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = gw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("replace %s in the code archive: %w", control.DescriptorFile, err)
	}
	if buf.Len() > control.MaxCodeSize {
		return nil, ErrCodeTooBig
	}
	return buf.Bytes(), nil
}
