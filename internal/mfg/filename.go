package mfg

import (
	"errors"
	"fmt"
	"strings"
)

// maxFileStem keeps <stem>.crt.tmp within the 255-byte name limit of common
// file systems.
const maxFileStem = 240

// SerialFileName returns the file name stem for a serial: letters, digits,
// '-', '_' and '.' stay as they are, every other byte (such as '/' or ':')
// becomes %XX, and so does a leading '.' (no hidden files, no "..") and the
// first letter of a Windows device name such as CON. The mapping is
// one-to-one, so two serials never share a file, and the result never
// contains a path separator.
//
// File systems that ignore case (macOS and Windows by default) still map
// serials differing only in case to one file.
func SerialFileName(serial string) (string, error) {
	if serial == "" {
		return "", errors.New("cannot name a file for an empty serial")
	}
	var b strings.Builder
	for i := 0; i < len(serial); i++ {
		c := serial[i]
		if isFileNameByte(c) && !(i == 0 && (c == '.' || isWindowsDeviceName(serial))) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() > maxFileStem {
		return "", fmt.Errorf("serial %q is too long to name a file (%d bytes once escaped, at most %d)", serial, b.Len(), maxFileStem)
	}
	return b.String(), nil
}

func isFileNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// isWindowsDeviceName reports whether s, before any extension, is a name
// Windows reserves for a device in every directory.
func isWindowsDeviceName(s string) bool {
	base, _, _ := strings.Cut(strings.ToUpper(s), ".")
	switch base {
	case "CON", "PRN", "AUX", "NUL":
		return true
	}
	return len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) && '1' <= base[3] && base[3] <= '9'
}
