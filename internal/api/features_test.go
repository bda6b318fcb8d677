package api

import "maps"

// featureContractAccess and featureContractPermissions are the contract's
// tables for the features of features.go, each transcribed in that
// feature's own test file.
var (
	featureContractAccess      = []map[string]string{jobsAccess, regionsAccess, auditAccess, detectAccess}
	featureContractPermissions = []map[Permission]string{jobsContractPermissions, regionsContractPermissions, auditContractPermissions, detectContractPermissions}
)

func init() {
	for _, m := range featureContractAccess {
		maps.Copy(contractAccess, m)
	}
}
