package controller

// The manager's ClusterRole, generated into config/rbac/role.yaml by controller-gen.
// Secrets and ConfigMaps are read for DataSource connectors; they are namespaced by
// the DataSource, and the manager never lists them cluster-wide by name pattern.
//
// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=datasources;personas;playbooks,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=datasources/status;personas/status;playbooks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=personas.usersuccess.io,resources=datasources/finalizers;personas/finalizers;playbooks/finalizers,verbs=update
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
