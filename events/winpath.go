package events

import (
	"fmt"
	"strings"
)

// Host paths in container specs are Windows paths, whatever system checks
// them: berth runs Windows containers, and berthd on Windows hands these
// paths to HCS. So they are read with Windows rules here, on every OS:
// '\' and '/' both separate, a drive letter or a share makes a path
// absolute, and names compare without regard to case.

// CleanWindowsPath checks that p is an absolute Windows path that names
// what it seems to, and returns it with '\' separators, runs of
// separators collapsed and no trailing separator. It refuses, with an error
// that says why:
//   - relative, drive-relative (C:data) and rooted (\data, /data) paths;
//   - device and verbatim paths (\\.\, \\?\), which skip normalization;
//   - "." and ".." components, and components that end in a dot or a space,
//     which Windows strips (so "..." or ".. " may become "..");
//   - ':' past the drive (an alternate data stream), and the characters
//     Windows forbids in names (<>"|?* and control characters);
//   - reserved device names (CON, NUL, COM1, LPT1, ... with any extension).
//
// The error wraps ErrInvalid.
func CleanWindowsPath(p string) (string, error) {
	c, err := cleanWindowsPath(p)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return c, nil
}

func cleanWindowsPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty path")
	}
	if len(p) > 4096 {
		return "", fmt.Errorf("%d bytes, more than 4096", len(p))
	}
	s := strings.ReplaceAll(p, "/", `\`)
	var head, rest string
	switch {
	case strings.HasPrefix(s, `\\?\`) || strings.HasPrefix(s, `\\.\`) || strings.HasPrefix(s, `\??\`):
		return "", fmt.Errorf("%q is a device or verbatim path; give a drive or share path", p)
	case strings.HasPrefix(s, `\\`):
		parts := strings.SplitN(s[2:], `\`, 3)
		if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
			return "", fmt.Errorf(`%q: a share path is \\server\share[\...]`, p)
		}
		head = `\\` + parts[0] + `\` + parts[1]
		if err := checkNames(p, parts[:2]); err != nil {
			return "", err
		}
		if len(parts) == 3 {
			rest = parts[2]
		}
	case len(s) >= 2 && s[1] == ':' && isLetter(s[0]):
		if len(s) > 2 && s[2] != '\\' {
			return "", fmt.Errorf(`%q is relative to the drive's current directory; write %c:\...`, p, s[0])
		}
		head, rest = strings.ToUpper(s[:1])+`:`, s[2:]
	default:
		return "", fmt.Errorf(`%q is not absolute: a Windows path starts with a drive (C:\) or a share (\\server\share)`, p)
	}
	var names []string
	for _, n := range strings.Split(rest, `\`) {
		if n != "" {
			names = append(names, n)
		}
	}
	if err := checkNames(p, names); err != nil {
		return "", err
	}
	if len(names) == 0 && !strings.HasPrefix(head, `\\`) {
		return head + `\`, nil
	}
	return strings.Join(append([]string{head}, names...), `\`), nil
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// reserved are the DOS device names, which name a device in every
// directory, with or without an extension.
var reserved = map[string]bool{"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true}

func init() {
	for _, d := range "123456789¹²³" {
		reserved["COM"+string(d)], reserved["LPT"+string(d)] = true, true
	}
}

func checkNames(p string, names []string) error {
	for _, n := range names {
		switch {
		case n == "..":
			return fmt.Errorf("%q: \"..\" components are not allowed", p)
		case n == ".":
			return fmt.Errorf("%q: \".\" components are not allowed", p)
		case strings.HasSuffix(n, ".") || strings.HasSuffix(n, " "):
			return fmt.Errorf("%q: component %q ends in a dot or space, which Windows drops", p, n)
		case strings.ContainsRune(n, ':'):
			return fmt.Errorf("%q: ':' past the drive names an alternate data stream", p)
		case strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || strings.ContainsRune(`<>"|?*`, r) }):
			return fmt.Errorf("%q: component %q holds a character Windows forbids in names", p, n)
		}
		base, _, _ := strings.Cut(n, ".")
		if reserved[strings.ToUpper(strings.TrimRight(base, " "))] {
			return fmt.Errorf("%q: %q is a reserved device name", p, n)
		}
	}
	return nil
}

// WithinRoots reports whether the clean path p (see [CleanWindowsPath]) is
// one of roots or lies below one, comparing without regard to case, as
// Windows does. Each root must be clean too.
func WithinRoots(p string, roots []string) bool {
	lp := strings.ToLower(p)
	for _, r := range roots {
		lr := strings.ToLower(strings.TrimSuffix(r, `\`))
		if lp == lr || strings.HasPrefix(lp, lr+`\`) {
			return true
		}
	}
	return false
}

// CheckMounts checks the bind-mount sources of spec against roots: each
// must be a clean absolute Windows path (see [CleanWindowsPath]) inside
// one of roots. The error wraps ErrInvalid and names the mount, such as
// mounts[1].source. With no roots, every bind mount is refused.
func CheckMounts(spec *ContainerSpec, roots []string) error {
	if spec == nil {
		return nil
	}
	for i, m := range spec.Mounts {
		f := fmt.Sprintf("mounts[%d].source", i)
		clean, err := cleanWindowsPath(m.Source)
		if err != nil {
			return fmt.Errorf("%w: spec.%s: %v", ErrInvalid, f, err)
		}
		if len(roots) == 0 {
			return fmt.Errorf("%w: spec.%s: %q: this node allows no bind mounts (berthd --mount-root)", ErrInvalid, f, m.Source)
		}
		if !WithinRoots(clean, roots) {
			return fmt.Errorf("%w: spec.%s: %q is outside the allowed roots %s", ErrInvalid, f, m.Source, strings.Join(roots, ", "))
		}
	}
	return nil
}
