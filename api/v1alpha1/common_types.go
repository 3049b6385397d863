package v1alpha1

// Condition types shared by every kind. They follow kstatus so that Argo CD, Flux
// and `kubectl wait --for=condition=Ready` understand our objects.
const (
	// ReadyCondition is True when the object's last reconcile fully succeeded.
	ReadyCondition = "Ready"
	// ReconcilingCondition is True while the controller works towards the spec
	// (abnormal-true: absent or False once settled).
	ReconcilingCondition = "Reconciling"
	// StalledCondition is True when the controller cannot make progress without a
	// change to the spec or a referenced object (abnormal-true).
	StalledCondition = "Stalled"
	// StaleCondition is True when data is older than the owner's maxStaleness.
	StaleCondition = "Stale"
	// DegradedCondition is True when the object works but not fully: a
	// DataSource's last sync rejected more than maxRejectPercent of its records
	// (abnormal-true).
	DegradedCondition = "Degraded"
)

// Reasons used in conditions. CamelCase, stable: alerts and tests match on them.
const (
	ReasonSucceeded          = "Succeeded"
	ReasonProgressing        = "Progressing"
	ReasonInvalidSpec        = "InvalidSpec"
	ReasonSecretNotFound     = "SecretNotFound"
	ReasonSourceDegraded     = "SourceDegraded"
	ReasonSuspiciousShrink   = "SuspiciousShrink"
	ReasonInvalidRule        = "InvalidRule"
	ReasonPersonaNotFound    = "PersonaNotFound"
	ReasonSuspended          = "Suspended"
	ReasonDataStale          = "DataStale"
	ReasonWaitingForSources  = "WaitingForSources"
	ReasonReconcileRequested = "ReconcileRequested"
	ReasonEmptyResult        = "EmptyResult"
	ReasonInvalidAttributes  = "InvalidAttributes"
	ReasonSchemaConflict     = "SchemaConflict"
	ReasonJobCreateFailed    = "JobCreateFailed"
	ReasonRecordsRejected    = "RecordsRejected"
	// ReasonLimitExceeded: a cluster-wide cap set by the manager's flags
	// (records per source, ...) was exceeded.
	ReasonLimitExceeded = "LimitExceeded"
	// ReasonEvaluationTimeout: evaluating a persona took longer than the
	// manager's --max-evaluation-time; membership was left as it was.
	ReasonEvaluationTimeout = "EvaluationTimeout"
	// ReasonEventsDisabled: an Events DataSource on a manager without an
	// event store (--events-database-dsn-file).
	ReasonEventsDisabled = "EventsDisabled"
	// ReasonWriteKeyConflict: an Events DataSource's write key is already
	// another namespace's.
	ReasonWriteKeyConflict = "WriteKeyConflict"
	// ReasonNotLoaded: a DataSource with spec.load None, read only where it
	// lives (its query checked against the database), never loaded into the
	// manager's memory.
	ReasonNotLoaded = "NotLoaded"
	// ReasonSourceNotLoaded: a persona evaluated in memory (or explained or
	// previewed) reads a DataSource with spec.load None.
	ReasonSourceNotLoaded = "SourceNotLoaded"
)

// ReconcileRequestAnnotation asks for an immediate reconcile when its value changes,
// like Flux's reconcile.fluxcd.io/requestedAt. The last handled value is recorded in
// status.lastHandledReconcileAt.
const ReconcileRequestAnnotation = "personas.usersuccess.io/reconcile-requested-at"

// ForceApplyAnnotation accepts the next sync of a DataSource even if the circuit
// breaker would hold it back (empty result, suspicious shrink). Set it to a new
// value (a timestamp) after checking the source; it is honoured once per value and
// the value is recorded in status.lastHandledForceApply.
const ForceApplyAnnotation = "personas.usersuccess.io/force-apply"

// Stage is a step of the User Success Journey. Personas carry one so Playbooks and
// `kubectl get personas -l personas.usersuccess.io/stage=...` can select by it.
// +kubebuilder:validation:Enum=onboarding;trial;adoption;engagement;retention;expansion;advocacy
type Stage string

// Journey stages.
const (
	StageOnboarding Stage = "onboarding"
	StageTrial      Stage = "trial"
	StageAdoption   Stage = "adoption"
	StageEngagement Stage = "engagement"
	StageRetention  Stage = "retention"
	StageExpansion  Stage = "expansion"
	StageAdvocacy   Stage = "advocacy"
)

// StageLabel mirrors a Persona's spec.stage so that it can be selected by label.
const StageLabel = "personas.usersuccess.io/stage"

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// name of the referent, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// SecretKeySelector selects one key of a Secret in the same namespace. Credentials
// are only ever read from Secrets; they never appear in status, events or logs.
type SecretKeySelector struct {
	// name of the Secret, in the same namespace as the referencing object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// key within the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +required
	Key string `json:"key"`
}

// ConfigMapKeySelector selects one key of a ConfigMap in the same namespace.
type ConfigMapKeySelector struct {
	// name of the ConfigMap, in the same namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// key within the ConfigMap's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +required
	Key string `json:"key"`
}
