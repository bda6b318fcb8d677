// Package vuln reads security advisories in the OSV format
// (https://ossf.github.io/osv-schema/) and decides which package versions
// they affect, with OSV's range semantics: SEMVER ranges by Semantic
// Versioning 2.0 precedence, ECOSYSTEM ranges by the ecosystem's order where
// Muster knows it (SemVer ecosystems) and by a documented natural order
// otherwise, and the explicit versions list always. GIT ranges name commits,
// which device records do not carry, and are ignored.
//
// The package is pure: loading reads files, matching reads nothing.
package vuln
