package descriptor

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes. Descriptors write it as a plain number of
// bytes or with a unit: Kubernetes quantities (512Ki, 256Mi, 1Gi; k, M, G
// are powers of 1000) and the usual KB/MB/GB and KiB/MiB/GiB spellings.
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// byteUnits maps each accepted suffix to its multiplier. Lower-case "k" is
// Kubernetes' spelling; "K" is accepted because people write it.
var byteUnits = map[string]float64{
	"": 1, "B": 1,
	"k": 1e3, "K": 1e3, "KB": 1e3, "kB": 1e3,
	"M": 1e6, "MB": 1e6,
	"G": 1e9, "GB": 1e9,
	"T": 1e12, "TB": 1e12,
	"Ki": 1 << 10, "KiB": 1 << 10,
	"Mi": 1 << 20, "MiB": 1 << 20,
	"Gi": 1 << 30, "GiB": 1 << 30,
	"Ti": 1 << 40, "TiB": 1 << 40,
}

// maxByteSize keeps sizes well inside int64 and float64's exact range.
const maxByteSize = 1 << 52

// ParseByteSize parses a size like 1048576, 512Ki, 1.5Gi or 10MB. Fractions
// of a byte are dropped.
func ParseByteSize(s string) (ByteSize, error) {
	num, unit := splitNumber(strings.TrimSpace(s))
	mult, ok := byteUnits[unit]
	if num == "" || !ok {
		return 0, fmt.Errorf("%q is not a size: write bytes, or a number with Ki, Mi, Gi, KB, MB or GB", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a size: write bytes, or a number with Ki, Mi, Gi, KB, MB or GB", s)
	}
	v := f * mult
	if v > maxByteSize {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return ByteSize(v), nil
}

// String writes n with the largest binary unit that divides it, so it
// parses back to the same value.
func (n ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		size   ByteSize
	}{{"Ti", 1 << 40}, {"Gi", GiB}, {"Mi", MiB}, {"Ki", KiB}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(int64(n/u.size), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(n), 10)
}

// parseMilliCPU parses a CPU quantity: cores (0.5, 2) or millicores (500m).
func parseMilliCPU(s string) (int64, error) {
	num, unit := splitNumber(strings.TrimSpace(s))
	mult := 1000.0
	switch unit {
	case "":
	case "m":
		mult = 1
	default:
		num = ""
	}
	f, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("%q is not a CPU quantity: write cores like 0.5 or 2, or millicores like 500m", s)
	}
	v := f * mult
	if v > maxByteSize {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v), nil
}

// splitNumber splits "1.5Gi" into "1.5" and "Gi". Signs and exponents are
// not numbers here: no size is negative and "1e3" reads as a unit typo.
func splitNumber(s string) (num, unit string) {
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return s[:i], s[i:]
}
