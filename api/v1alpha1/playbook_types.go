package v1alpha1

import (
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TriggerEvent is the membership change that starts a run.
// +kubebuilder:validation:Enum=Enter;Exit
type TriggerEvent string

// Trigger events.
const (
	TriggerEnter TriggerEvent = "Enter"
	TriggerExit  TriggerEvent = "Exit"
)

// ReentryPolicy decides whether a user who enters again gets another run.
// +kubebuilder:validation:Enum=Once;EveryEntry
type ReentryPolicy string

// Re-entry policies.
const (
	// ReentryOnce runs a playbook once per user, ever.
	ReentryOnce ReentryPolicy = "Once"
	// ReentryEveryEntry runs it on every entry, at most once per cooldown.
	ReentryEveryEntry ReentryPolicy = "EveryEntry"
)

// PlaybookSpec declares the Jobs to run for users who enter (or exit) a persona.
// +kubebuilder:validation:XValidation:rule="[has(self.personaRef), has(self.personaSelector), has(self.stage)].filter(x, x).size() == 1",message="exactly one of spec.personaRef, spec.personaSelector and spec.stage must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.cooldown) || self.reentryPolicy == 'EveryEntry'",message="spec.cooldown requires reentryPolicy EveryEntry"
type PlaybookSpec struct {
	// personaRef names the persona, in the same namespace, whose members trigger runs.
	// +optional
	PersonaRef *LocalObjectReference `json:"personaRef,omitempty"`
	// personaSelector selects personas of the namespace by label instead.
	// +optional
	PersonaSelector *metav1.LabelSelector `json:"personaSelector,omitempty"`
	// stage selects every persona of the namespace in this journey stage instead.
	// +optional
	Stage Stage `json:"stage,omitempty"`

	// trigger is the membership change that starts a run: Enter or Exit. (Not
	// named "on": YAML 1.1 parsers, kubectl's included, read the key on as true.) Defaults to Enter.
	// +kubebuilder:default=Enter
	// +optional
	Trigger TriggerEvent `json:"trigger,omitempty"`

	// includeExistingMembers also runs the playbook for users who were already
	// members when the Playbook was created. By default only later entries count.
	// +optional
	IncludeExistingMembers bool `json:"includeExistingMembers,omitempty"`

	// reentryPolicy: Once per user ever, or EveryEntry (optionally with a cooldown). Defaults to Once.
	// +kubebuilder:default=Once
	// +optional
	ReentryPolicy ReentryPolicy `json:"reentryPolicy,omitempty"`

	// cooldown is the least time between two runs for the same user under
	// EveryEntry.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +optional
	Cooldown *metav1.Duration `json:"cooldown,omitempty"`

	// steps run in order for each user; a step starts after the previous one
	// succeeded.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=20
	// +required
	Steps []PlaybookStep `json:"steps"`

	// maxConcurrentJobs caps the playbook's Jobs running at once. Defaults to 10.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	MaxConcurrentJobs int32 `json:"maxConcurrentJobs,omitempty"`

	// maxLaunchesPerMinute caps how fast Jobs are created. Defaults to 60.
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxLaunchesPerMinute int32 `json:"maxLaunchesPerMinute,omitempty"`

	// usersPerJob batches mass entries: one Job gets up to this many users. Defaults to 1.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	UsersPerJob int32 `json:"usersPerJob,omitempty"`

	// suspend stops new launches; running Jobs go on, entries are remembered.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// serviceAccountName is the ServiceAccount of this namespace the manager
	// acts as (by impersonation) to create the steps' Jobs and their payload
	// Secrets, so the API server authorizes them against that ServiceAccount's
	// RBAC, not the manager's. A step's pod may run as this ServiceAccount or
	// the namespace's default one, no other. Unset: the manager's
	// --default-service-account; when that is unset too, the manager creates
	// Jobs as itself, unless it runs with --require-service-account, which
	// stalls the playbook. See docs/security.md.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
}

// PlaybookStep is one task of a playbook, run as a batch/v1 Job per user (or
// batch of users). The container gets the user context as environment variables.
type PlaybookStep struct {
	// name of the step, unique within the playbook.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=40
	// +required
	Name string `json:"name"`
	// dueAfter is how long after the user's entry the step should have succeeded;
	// past it the run counts as overdue (exposed to persona rules and as a metric).
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +optional
	DueAfter *metav1.Duration `json:"dueAfter,omitempty"`
	// jobTemplate is the Job to create for this step. Its pod template's
	// restartPolicy is Never when unset (a Job's pods may not use Always).
	// +kubebuilder:validation:XValidation:rule="!has(self.spec) || !has(self.spec.template.spec) || !has(self.spec.template.spec.restartPolicy) || self.spec.template.spec.restartPolicy != 'Always'",message="a Job's pod template restartPolicy must be Never or OnFailure, not Always (unset means Never)"
	// +required
	JobTemplate batchv1.JobTemplateSpec `json:"jobTemplate"`
}

// PlaybookStatus is the observed state of a Playbook.
type PlaybookStatus struct {
	// observedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready (PersonaNotFound, DataStale, Suspended, ...), Reconciling
	// and Stalled.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// personas is how many personas the trigger matched.
	// +optional
	Personas int32 `json:"personas,omitempty"`
	// pending runs wait for a launch slot.
	// +optional
	Pending int64 `json:"pending"`
	// running runs have an active Job.
	// +optional
	Running int64 `json:"running"`
	// succeeded runs completed every step.
	// +optional
	Succeeded int64 `json:"succeeded"`
	// failed runs have a step whose Job failed.
	// +optional
	Failed int64 `json:"failed"`
	// overdue runs have a step past its dueAfter that has not succeeded.
	// +optional
	Overdue int64 `json:"overdue"`
	// lastLaunchTime is when the last Job was created.
	// +optional
	LastLaunchTime *metav1.Time `json:"lastLaunchTime,omitempty"`
}

// Playbook launches batch/v1 Jobs for users entering (or exiting) a persona or a
// journey stage, exactly once per entry and step.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pb;pbook,categories=usersuccess
// +kubebuilder:printcolumn:name="Persona",type=string,JSONPath=`.spec.personaRef.name`
// +kubebuilder:printcolumn:name="Stage",type=string,JSONPath=`.spec.stage`,priority=1
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.pending`,priority=1
// +kubebuilder:printcolumn:name="Running",type=integer,JSONPath=`.status.running`
// +kubebuilder:printcolumn:name="Succeeded",type=integer,JSONPath=`.status.succeeded`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.failed`
// +kubebuilder:printcolumn:name="Overdue",type=integer,JSONPath=`.status.overdue`,priority=1
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it is the value of the label personas.usersuccess.io/playbook on the playbook's PlaybookProgress slices and Jobs"
type Playbook struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the trigger, steps and guardrails.
	// +required
	Spec PlaybookSpec `json:"spec"`
	// status is the observed state, written by the controller.
	// +optional
	Status PlaybookStatus `json:"status,omitempty"`
}

// PlaybookList is a list of Playbooks.
// +kubebuilder:object:root=true
type PlaybookList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Playbook `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Playbook{}, &PlaybookList{})
}
