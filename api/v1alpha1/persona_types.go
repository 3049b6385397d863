package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InsightType is the aggregate an insight computes over a persona's members.
// +kubebuilder:validation:Enum=TopValues;Sum;Average;Min;Max
type InsightType string

// Insight types.
const (
	// InsightTopValues counts each value the expression yields (a value, or each
	// element of a list) and keeps the most frequent, e.g. the most requested
	// enhancements among members; a count grouped by an expression is the same.
	InsightTopValues InsightType = "TopValues"
	// InsightSum adds a number over members, e.g. the ARR at risk.
	InsightSum InsightType = "Sum"
	// InsightAverage averages a number over the members that have it.
	InsightAverage InsightType = "Average"
	// InsightMin is the smallest number over members.
	InsightMin InsightType = "Min"
	// InsightMax is the largest number over members.
	InsightMax InsightType = "Max"
)

// InsightCount is what a TopValues insight counts for each value.
// +kubebuilder:validation:Enum=Members;Occurrences
type InsightCount string

// What TopValues counts.
const (
	// InsightCountMembers counts the members having the value: a member whose
	// list holds it twice counts once (e.g. how many users requested SSO).
	InsightCountMembers InsightCount = "Members"
	// InsightCountOccurrences counts every occurrence of the value in the
	// members' values and lists (e.g. how many SSO requests were made).
	InsightCountOccurrences InsightCount = "Occurrences"
)

// EvaluationMode says where a persona's rule is evaluated.
// +kubebuilder:validation:Enum=InMemory;Database;Auto
type EvaluationMode string

// Evaluation modes.
const (
	// EvaluationInMemory evaluates the rule over the manager's profile store.
	EvaluationInMemory EvaluationMode = "InMemory"
	// EvaluationDatabase evaluates the rule inside the PostgreSQL database its
	// DataSources read; admission requires the rule to translate exactly.
	EvaluationDatabase EvaluationMode = "Database"
	// EvaluationAuto is Database when the rule translates, InMemory otherwise.
	EvaluationAuto EvaluationMode = "Auto"
)

// PersonaSpec declares a segment of users as a CEL rule.
type PersonaSpec struct {
	// description says who this persona is, for humans.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Description string `json:"description,omitempty"`

	// rule is a CEL expression over `user`, `account` and `now` (a timestamp) that
	// is true for members, e.g.
	//   account.tier == "enterprise" && account.renewalDate - now <= duration("2160h")
	//   && user.role == "decision_maker" && user.nps <= 6
	// A rule that reads an attribute a profile lacks does not match that profile;
	// guard optional attributes with has(user.nps).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	// +required
	Rule string `json:"rule"`

	// dataSources restricts the profiles to those with data from these DataSources
	// of the namespace. Empty: every DataSource in the namespace.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	// +optional
	DataSources []LocalObjectReference `json:"dataSources,omitempty"`

	// stage of the User Success Journey this persona belongs to. Mirrored to the
	// personas.usersuccess.io/stage label so Playbooks and kubectl can select by it.
	// +optional
	Stage Stage `json:"stage,omitempty"`

	// insights are named aggregates over the members, kept in status (top 10).
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Insights []InsightSpec `json:"insights,omitempty"`

	// refreshInterval is the longest time between evaluations. Membership is also
	// re-evaluated when data or the spec changes and when `now` crosses a threshold. Defaults to 10m.
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="refreshInterval must be at least 10s"
	// +optional
	RefreshInterval *metav1.Duration `json:"refreshInterval,omitempty"`

	// sliceSize is the most members one PersonaMembership slice object holds. Defaults to 1000.
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	SliceSize int32 `json:"sliceSize,omitempty"`

	// suspend stops evaluation: membership is frozen, nobody enters or exits.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// evaluation says where the rule is evaluated: InMemory (the default), over
	// the manager's profile store; Database, inside the PostgreSQL database the
	// persona's DataSources read, for which admission requires the rule to
	// translate to SQL exactly (or rejects it with the position and the
	// reason); Auto, Database when the rule translates and InMemory otherwise.
	// status.evaluation says which was chosen and why.
	// +kubebuilder:default=InMemory
	// +optional
	Evaluation EvaluationMode `json:"evaluation,omitempty"`
}

// EvaluationStatus is where a persona's rule is evaluated, and why.
type EvaluationStatus struct {
	// mode is where the rule is evaluated: InMemory or Database.
	Mode EvaluationMode `json:"mode"`
	// reason explains the choice: spec.evaluation, or why the rule cannot be
	// evaluated in the database.
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
}

// InsightSpec is one named aggregate over a persona's members.
// +kubebuilder:validation:XValidation:rule="!has(self.count) || self.count == 'Members' || self.type == 'TopValues'",message="count: Occurrences applies to TopValues insights only"
type InsightSpec struct {
	// name of the insight, unique within the persona.
	// +kubebuilder:validation:Pattern=`^[a-zA-Z][a-zA-Z0-9_-]*$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// type of aggregate.
	// +required
	Type InsightType `json:"type"`
	// expression is CEL over `user`, `account` and `now` yielding the value to
	// aggregate: a value or a list for TopValues, a number otherwise.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +required
	Expression string `json:"expression"`
	// limit is how many values TopValues keeps. Defaults to 10.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +optional
	Limit int32 `json:"limit,omitempty"`
	// count is what TopValues counts for each value: Members (the default),
	// the members having it, or Occurrences, every time it occurs over the
	// members' values and lists (how many feature requests, not how many
	// requesters).
	// +optional
	Count InsightCount `json:"count,omitempty"`
}

// MembershipChange counts who entered and exited in one evaluation.
type MembershipChange struct {
	// entered is the number of users who became members.
	Entered int64 `json:"entered"`
	// exited is the number of users who stopped being members.
	Exited int64 `json:"exited"`
	// time of the evaluation that made the change.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`
}

// InsightValue is one value of a TopValues insight and how many members have it.
type InsightValue struct {
	// value, rendered as a string.
	// +kubebuilder:validation:MaxLength=256
	Value string `json:"value"`
	// count of members with the value, or of its occurrences (the insight's
	// spec.count).
	Count int64 `json:"count"`
}

// InsightResult is an insight's latest result.
type InsightResult struct {
	// name of the insight.
	Name string `json:"name"`
	// type of the insight.
	Type InsightType `json:"type"`
	// values of a TopValues insight, most frequent first (ties by value).
	// +kubebuilder:validation:MaxItems=10
	// +optional
	Values []InsightValue `json:"values,omitempty"`
	// value of a Sum, Average, Min or Max insight, as a decimal string.
	// +optional
	Value string `json:"value,omitempty"`
	// members is how many members contributed a value.
	// +optional
	Members int64 `json:"members,omitempty"`
	// error is why the insight could not be computed, if it could not.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Error string `json:"error,omitempty"`
}

// SourceFreshness records how fresh one DataSource's data was at evaluation.
type SourceFreshness struct {
	// name of the DataSource.
	Name string `json:"name"`
	// lastSuccessfulSyncTime of that DataSource when the persona was evaluated.
	// +optional
	LastSuccessfulSyncTime *metav1.Time `json:"lastSuccessfulSyncTime,omitempty"`
	// stale is true when that DataSource was Stale.
	// +optional
	Stale bool `json:"stale,omitempty"`
}

// PersonaStatus is the observed state of a Persona.
type PersonaStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready (InvalidRule, WaitingForSources, ...), Reconciling, Stalled
	// and Stale (a source's data is older than its maxStaleness).
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// members is the current number of members.
	// +optional
	Members int64 `json:"members"`
	// lastChange counts who entered and exited in the last evaluation that changed
	// membership.
	// +optional
	LastChange *MembershipChange `json:"lastChange,omitempty"`
	// totalEntered counts entries since the persona was created.
	// +optional
	TotalEntered int64 `json:"totalEntered"`
	// totalExited counts exits since the persona was created.
	// +optional
	TotalExited int64 `json:"totalExited"`
	// slices is the number of PersonaMembership objects holding the members.
	// +optional
	Slices int32 `json:"slices,omitempty"`
	// sampleMembers are the first few member ids in sorted order (at most 10);
	// the full set lives in PersonaMembership slices.
	// +kubebuilder:validation:MaxItems=10
	// +optional
	SampleMembers []string `json:"sampleMembers,omitempty"`
	// evaluationErrors counts profiles whose rule evaluation failed in the last
	// evaluation (they are treated as non-members).
	// +optional
	EvaluationErrors int64 `json:"evaluationErrors,omitempty"`
	// lastEvaluationTime is when the rule was last evaluated and recorded: an
	// evaluation that changes nothing else is recorded at most once per
	// refreshInterval, so idle personas cost no API writes.
	// +optional
	LastEvaluationTime *metav1.Time `json:"lastEvaluationTime,omitempty"`
	// lastEvaluationDuration is how long the last evaluation took.
	// +optional
	LastEvaluationDuration *metav1.Duration `json:"lastEvaluationDuration,omitempty"`
	// dataFreshness is the oldest last successful sync among the sources evaluated.
	// +optional
	DataFreshness *metav1.Time `json:"dataFreshness,omitempty"`
	// sources are the DataSources the last evaluation read, sorted by name.
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Sources []SourceFreshness `json:"sources,omitempty"`
	// evaluation is where the rule was last evaluated, and why.
	// +optional
	Evaluation *EvaluationStatus `json:"evaluation,omitempty"`
	// insights are the latest results of spec.insights.
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Insights []InsightResult `json:"insights,omitempty"`
	// nextEvaluationTime is when time alone may next change membership: the
	// earliest instant, rounded up to the second, at which a comparison of the
	// rule with now (such as `account.renewalDate - now <= duration("2160h")`)
	// flips for some profile. The controller evaluates the rule again then, or
	// earlier (refreshInterval, a change of spec or data). Unset when the rule
	// does not read now, when no such comparison flips later given the current
	// data, or when the rule uses now in a form that cannot be solved for that
	// instant (then only refreshInterval catches changes by time).
	// +optional
	NextEvaluationTime *metav1.Time `json:"nextEvaluationTime,omitempty"`
	// lastHandledReconcileAt is the last value of the reconcile-requested-at
	// annotation that was handled.
	// +optional
	LastHandledReconcileAt string `json:"lastHandledReconcileAt,omitempty"`
}

// Persona is a segment of users across accounts, declared as a CEL rule. Its
// controller keeps membership current, records who entered and exited, and stores
// the members in PersonaMembership slices.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=psn;pers,categories=usersuccess
// +kubebuilder:printcolumn:name="Stage",type=string,JSONPath=`.spec.stage`,priority=1
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.status.members`
// +kubebuilder:printcolumn:name="Entered",type=integer,JSONPath=`.status.lastChange.entered`
// +kubebuilder:printcolumn:name="Exited",type=integer,JSONPath=`.status.lastChange.exited`
// +kubebuilder:printcolumn:name="Total Entered",type=integer,JSONPath=`.status.totalEntered`,priority=1
// +kubebuilder:printcolumn:name="Total Exited",type=integer,JSONPath=`.status.totalExited`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it is the value of the label personas.usersuccess.io/persona on the persona's PersonaMembership slices and Jobs"
type Persona struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the rule and what to compute.
	// +required
	Spec PersonaSpec `json:"spec"`
	// status is the observed state, written by the controller.
	// +optional
	Status PersonaStatus `json:"status,omitempty"`
}

// PersonaList is a list of Personas.
// +kubebuilder:object:root=true
type PersonaList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Persona `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Persona{}, &PersonaList{})
}
