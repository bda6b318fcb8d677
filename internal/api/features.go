package api

// featureRoutes are the routes of the features built on the registry, each
// declared in its own file next to its handlers, in the order they appear
// in the OpenAPI document.
func featureRoutes() []route {
	var all []route
	for _, f := range []func() []route{gatewayRoutes, commandRoutes, jobRoutes, regionRoutes, auditRoutes, detectRoutes} {
		all = append(all, f()...)
	}
	return all
}

// featurePermissions are the grants of those features' permissions,
// declared next to their routes.
func featurePermissions(r Role) []Permission {
	var all []Permission
	for _, f := range []func(Role) []Permission{jobPermissions, regionPermissions, auditPermissions, detectPermissions} {
		all = append(all, f(r)...)
	}
	return all
}
