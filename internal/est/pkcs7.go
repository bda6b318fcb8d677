package est

import (
	encasn1 "encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// PKCS #7 content types (RFC 5652).
var (
	oidData       = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

// certsOnly encodes DER certificates as a degenerate ("certs-only")
// PKCS #7 SignedData: no content, no signers, only certificates. It is how
// EST returns certificates (RFC 7030 section 4.1.3 and 4.2.3).
func certsOnly(certs [][]byte) []byte {
	explicit0 := cbasn1.Tag(0).Constructed().ContextSpecific()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(ci *cryptobyte.Builder) { // ContentInfo
		ci.AddASN1ObjectIdentifier(oidSignedData)
		ci.AddASN1(explicit0, func(c *cryptobyte.Builder) {
			c.AddASN1(cbasn1.SEQUENCE, func(sd *cryptobyte.Builder) { // SignedData
				sd.AddASN1Int64(1)
				sd.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {}) // digestAlgorithms
				sd.AddASN1(cbasn1.SEQUENCE, func(eci *cryptobyte.Builder) {
					eci.AddASN1ObjectIdentifier(oidData)
				})
				sd.AddASN1(explicit0, func(cs *cryptobyte.Builder) { // certificates [0] IMPLICIT
					for _, c := range certs {
						cs.AddBytes(c)
					}
				})
				sd.AddASN1(cbasn1.SET, func(*cryptobyte.Builder) {}) // signerInfos
			})
		})
	})
	return b.BytesOrPanic() // only fails on builder misuse, which tests would catch
}

// ParseCertsOnly returns the certificates of a certs-only PKCS #7
// SignedData in DER: what an EST client (agent) reads from cacerts and
// enroll answers.
func ParseCertsOnly(der []byte) ([][]byte, bool) {
	in := cryptobyte.String(der)
	var ci, content, sd, certs cryptobyte.String
	var oid encasn1.ObjectIdentifier
	var version int64
	explicit0 := cbasn1.Tag(0).Constructed().ContextSpecific()
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1ObjectIdentifier(&oid) || !oid.Equal(oidSignedData) ||
		!ci.ReadASN1(&content, explicit0) || !content.ReadASN1(&sd, cbasn1.SEQUENCE) ||
		!sd.ReadASN1Integer(&version) || !sd.SkipASN1(cbasn1.SET) || !sd.SkipASN1(cbasn1.SEQUENCE) ||
		!sd.ReadASN1(&certs, explicit0) {
		return nil, false
	}
	var out [][]byte
	for !certs.Empty() {
		var cert cryptobyte.String
		var tag cbasn1.Tag
		if !certs.ReadAnyASN1Element(&cert, &tag) || tag != cbasn1.SEQUENCE {
			return nil, false
		}
		out = append(out, cert)
	}
	return out, true
}
