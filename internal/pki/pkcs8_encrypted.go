package pki

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

// Encrypted PKCS#8 (RFC 5208, RFC 8018) as OpenSSL writes it with
// `openssl pkey -aes256`: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC. The
// standard library reads only unencrypted PKCS#8, and this is the one
// encrypted form every tool understands, so we implement exactly it.

// Object identifiers used by the encrypted PKCS#8 format. They are never
// modified.
var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

const (
	aes256KeyLen  = 32
	pbkdf2SaltLen = 16
	// DefaultPBKDF2Iterations follows the OWASP recommendation for
	// PBKDF2-HMAC-SHA256. CA keys are read once at start-up, so the cost is
	// paid rarely.
	DefaultPBKDF2Iterations = 600_000
	// minPBKDF2Iterations is the floor accepted when writing keys.
	minPBKDF2Iterations = 1000
	// maxPBKDF2Iterations bounds the work a crafted key file can demand.
	maxPBKDF2Iterations = 10_000_000
)

type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

// errWrongPassphrase is returned when decryption produces garbage, which for
// CBC almost always shows as bad padding and otherwise as unparseable DER.
var errWrongPassphrase = errors.New("wrong passphrase or corrupt key")

// encryptPKCS8 encrypts a DER PKCS#8 PrivateKeyInfo under passphrase and
// returns the DER EncryptedPrivateKeyInfo.
func encryptPKCS8(plain, passphrase []byte, iterations int) ([]byte, error) {
	salt := make([]byte, pbkdf2SaltLen)
	iv := make([]byte, aes.BlockSize)
	// crypto/rand.Read never fails (it aborts the program instead).
	_, _ = rand.Read(salt)
	_, _ = rand.Read(iv)

	key, err := pbkdf2.Key(sha256.New, string(passphrase), salt, iterations, aes256KeyLen)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	padLen := aes.BlockSize - len(plain)%aes.BlockSize
	data := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(padLen)}, padLen)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, data)

	kdfDER, err := asn1.Marshal(pbkdf2Params{
		Salt:           salt,
		IterationCount: iterations,
		KeyLength:      aes256KeyLen,
		PRF:            pkix.AlgorithmIdentifier{Algorithm: oidHMACWithSHA256, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		return nil, err
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, err
	}
	paramsDER, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdfDER}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, err
	}
	return asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: paramsDER}},
		EncryptedData: data,
	})
}

// decryptPKCS8 reverses encryptPKCS8 and returns the DER PrivateKeyInfo. It
// accepts only the algorithms encryptPKCS8 writes.
func decryptPKCS8(der, passphrase []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if err := unmarshalDER(der, &info); err != nil {
		return nil, fmt.Errorf("not an encrypted PKCS#8 key: %w", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("unsupported key encryption %s: only PBES2 is supported", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if err := unmarshalDER(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("bad PBES2 parameters: %w", err)
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("unsupported key derivation %s: only PBKDF2 is supported", params.KeyDerivationFunc.Algorithm)
	}
	if !params.EncryptionScheme.Algorithm.Equal(oidAES256CBC) {
		return nil, fmt.Errorf("unsupported cipher %s: only AES-256-CBC is supported", params.EncryptionScheme.Algorithm)
	}
	var kdf pbkdf2Params
	if err := unmarshalDER(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("bad PBKDF2 parameters: %w", err)
	}
	if !kdf.PRF.Algorithm.Equal(oidHMACWithSHA256) {
		return nil, fmt.Errorf("unsupported PBKDF2 PRF %v: only HMAC-SHA256 is supported", kdf.PRF.Algorithm)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != aes256KeyLen {
		return nil, fmt.Errorf("bad PBKDF2 key length %d for AES-256", kdf.KeyLength)
	}
	if kdf.IterationCount < 1 || kdf.IterationCount > maxPBKDF2Iterations {
		return nil, fmt.Errorf("PBKDF2 iteration count %d out of range 1..%d", kdf.IterationCount, maxPBKDF2Iterations)
	}
	var iv []byte
	if err := unmarshalDER(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil || len(iv) != aes.BlockSize {
		return nil, errors.New("bad AES-CBC initialisation vector")
	}
	if len(info.EncryptedData) == 0 || len(info.EncryptedData)%aes.BlockSize != 0 {
		return nil, errors.New("encrypted data is not a whole number of AES blocks")
	}

	key, err := pbkdf2.Key(sha256.New, string(passphrase), kdf.Salt, kdf.IterationCount, aes256KeyLen)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	plain := make([]byte, len(info.EncryptedData))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, info.EncryptedData)

	padLen := int(plain[len(plain)-1])
	if padLen == 0 || padLen > aes.BlockSize {
		return nil, errWrongPassphrase
	}
	for _, b := range plain[len(plain)-padLen:] {
		if int(b) != padLen {
			return nil, errWrongPassphrase
		}
	}
	return plain[:len(plain)-padLen], nil
}

// unmarshalDER parses exactly one DER value into v, refusing trailing bytes
// so that two different files never decode to the same structure.
func unmarshalDER(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return errors.New("trailing data after DER value")
	}
	return nil
}
