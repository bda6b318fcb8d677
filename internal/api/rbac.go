package api

import (
	"net/http"
	"slices"

	"github.com/muster-iot/muster/internal/fleet"
)

// Role is what a token is for. Roles grant permissions; a manufacturer's
// are further scoped to its factory.
type Role string

// The roles of docs/api-contract.md.
const (
	RoleAdmin        Role = "admin"
	RoleOperator     Role = "operator"
	RoleManufacturer Role = "manufacturer"
	RoleInstaller    Role = "installer"
	RoleAuditor      Role = "auditor"
)

// Permission names what a route needs. Two pseudo-permissions mark routes
// that need no token (PermPublic) or any valid token (PermAnyToken).
type Permission string

// The permissions of docs/api-contract.md.
const (
	PermPublic              Permission = ""
	PermAnyToken            Permission = "token"
	PermDevicesRead         Permission = "devices:read"
	PermDevicesCreate       Permission = "devices:create"
	PermDevicesUpdate       Permission = "devices:update"
	PermDevicesState        Permission = "devices:state"
	PermDevicesMaintain     Permission = "devices:maintain"
	PermDevicesDecommission Permission = "devices:decommission"
	PermDevicesCommand      Permission = "devices:command"
	PermHistoryRead         Permission = "history:read"
	PermTokensManage        Permission = "tokens:manage"
	PermAuditRead           Permission = "audit:read"
	PermCertsRevoke         Permission = "certs:revoke"
	PermTemplatesRead       Permission = "templates:read"
	PermTemplatesManage     Permission = "templates:manage"
	PermApprovalsManage     Permission = "approvals:manage"
	PermClaimsCreate        Permission = "claims:create"
	PermFactoriesRead       Permission = "factories:read"
	PermFactoriesManage     Permission = "factories:manage"
	PermBatchesSubmit       Permission = "batches:submit"
	PermCAsRead             Permission = "cas:read"
	PermCAsManage           Permission = "cas:manage"
)

// rolePermissions is the permission table of the contract, role by role.
// It is the only place that grants anything.
func rolePermissions(r Role) []Permission {
	return append(corePermissions(r), featurePermissions(r)...)
}

// corePermissions are the grants of the registry, PKI and provisioning
// routes; features.go adds those of later features.
func corePermissions(r Role) []Permission {
	switch r {
	case RoleAdmin:
		return []Permission{PermDevicesRead, PermDevicesCreate, PermDevicesUpdate, PermDevicesState,
			PermDevicesMaintain, PermDevicesDecommission, PermDevicesCommand, PermHistoryRead, PermTokensManage, PermAuditRead,
			PermCertsRevoke, PermFactoriesRead, PermFactoriesManage, PermBatchesSubmit, PermCAsRead, PermCAsManage,
			PermTemplatesRead, PermTemplatesManage, PermApprovalsManage, PermClaimsCreate}
	case RoleOperator:
		return []Permission{PermDevicesRead, PermDevicesCreate, PermDevicesUpdate, PermDevicesState,
			PermDevicesMaintain, PermDevicesDecommission, PermDevicesCommand, PermHistoryRead, PermCertsRevoke,
			PermFactoriesRead, PermFactoriesManage, PermBatchesSubmit, PermCAsRead,
			PermTemplatesRead, PermTemplatesManage, PermApprovalsManage, PermClaimsCreate}
	case RoleManufacturer:
		return []Permission{PermDevicesRead, PermDevicesCreate, PermDevicesUpdate, PermHistoryRead,
			PermFactoriesRead, PermBatchesSubmit}
	case RoleInstaller:
		return []Permission{PermDevicesRead, PermDevicesMaintain, PermClaimsCreate}
	case RoleAuditor:
		return []Permission{PermDevicesRead, PermHistoryRead, PermAuditRead, PermFactoriesRead, PermCAsRead, PermTemplatesRead}
	}
	return nil
}

// Roles returns every role, most powerful first.
func Roles() []Role {
	return []Role{RoleAdmin, RoleOperator, RoleManufacturer, RoleInstaller, RoleAuditor}
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// Can reports whether r grants p. Every valid role passes PermAnyToken and
// PermPublic; unknown roles pass nothing but PermPublic.
func (r Role) Can(p Permission) bool {
	switch {
	case p == PermPublic:
		return true
	case p == PermAnyToken:
		return r.Valid()
	}
	return slices.Contains(rolePermissions(r), p)
}

// authorize answers 403 unless the caller's role grants perm.
func (s *Server) authorize(perm Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		if !p.Role.Can(perm) {
			s.writeError(w, r, errorf(http.StatusForbidden, codeForbidden, "",
				"role %s does not have permission %s", p.Role, perm))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// scoped reports whether the principal is limited to one factory's devices.
func (p Principal) scoped() bool { return p.Role == RoleManufacturer }

// canSee reports whether the principal may know that d exists. A
// manufacturer sees only its own factory's devices; a manufacturer token
// without a factory sees none, so a bad token fails closed.
func (p Principal) canSee(d *fleet.Device) bool {
	return !p.scoped() || (p.Factory != "" && d.Identity.Factory == p.Factory)
}
