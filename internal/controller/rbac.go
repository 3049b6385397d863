package controller

// The manager's ClusterRole, generated into config/rbac/role.yaml by controller-gen.
//
// It holds no Secret access and no Job create: the manager reads a DataSource's
// Secrets and creates a Playbook's Jobs and payload Secrets as a ServiceAccount
// of the object's namespace (Identities: impersonation), so the API server
// authorizes them against the tenant's RBAC. It may impersonate only
// ServiceAccounts named persona-tenant (the --default-service-account the
// samples and docs/security.md use): an object naming another ServiceAccount
// is stalled with ImpersonationForbidden until the installer adds its name to
// this rule, so whoever edits a DataSource or Playbook cannot borrow a
// namespace's stronger ServiceAccount. ConfigMaps are watched (metadata only)
// so an edited inline ConfigMap re-syncs at once; Jobs are watched (label
// selected) and patched only to remove the run finalizer.
//
// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=datasources;personas;playbooks,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=datasources/status;personas/status;playbooks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=datasources/finalizers;personas/finalizers;playbooks/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=impersonate,resourceNames=persona-tenant
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
