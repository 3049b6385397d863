package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PlaybookLabel names the Playbook a PlaybookProgress slice or a Job belongs to.
const PlaybookLabel = "personas.usersuccess.io/playbook"

// PlaybookUIDLabel carries the owning Playbook's UID on Jobs, so a Playbook
// re-created under the same name never adopts its predecessor's Jobs.
const PlaybookUIDLabel = "personas.usersuccess.io/playbook-uid"

// StepLabel names the playbook step a Job runs.
const StepLabel = "personas.usersuccess.io/step"

// RunFinalizer holds a playbook Job until its outcome is recorded in a
// PlaybookProgress slice, so that a Job deleted by ttlSecondsAfterFinished (or
// by hand) can never be mistaken for one that was never created.
const RunFinalizer = "personas.usersuccess.io/run-recorded"

// MaxRunsPerSlice is the most runs one PlaybookProgress holds.
const MaxRunsPerSlice = 500

// RunPhase is where one user's run of a playbook is.
// +kubebuilder:validation:Enum=Armed;Pending;Running;Succeeded;Failed
type RunPhase string

// Run phases.
const (
	// RunArmed: an Exit playbook saw the user inside; the run starts when the
	// user leaves this entry.
	RunArmed RunPhase = "Armed"
	// RunPending: the step waits for a launch slot (guardrails, suspend, stale data).
	RunPending RunPhase = "Pending"
	// RunRunning: the step's Job was decided (it exists or is being created) and
	// has not finished.
	RunRunning RunPhase = "Running"
	// RunSucceeded: every step succeeded.
	RunSucceeded RunPhase = "Succeeded"
	// RunFailed: a step's Job failed; later steps do not run.
	RunFailed RunPhase = "Failed"
)

// PlaybookRun is one user's run of a playbook for one persona entry.
type PlaybookRun struct {
	// userId of the user the run is for.
	// +kubebuilder:validation:MaxLength=253
	UserID string `json:"userId"`
	// accountId of the user, if any.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	AccountID string `json:"accountId,omitempty"`
	// persona whose entry (or exit) started the run.
	// +kubebuilder:validation:MaxLength=253
	Persona string `json:"persona"`
	// enteredAt identifies the entry: when the user entered the persona.
	EnteredAt metav1.Time `json:"enteredAt"`
	// step is the current step, or the last one once the run has finished.
	// +kubebuilder:validation:MaxLength=40
	Step string `json:"step"`
	// phase of the run.
	Phase RunPhase `json:"phase"`
	// job is the name of the current step's Job. It is recorded before the Job is
	// created: the record is the intent, the Job name the lock.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Job string `json:"job,omitempty"`
	// startedAt is when the run's first Job was decided.
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// finishedAt is when the run succeeded or failed.
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
	// reason says why a run failed, e.g. JobFailed or JobDeleted.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Reason string `json:"reason,omitempty"`
}

// PlaybookProgress is one slice of a Playbook's run ledger: the durable record
// of which user got which run. Jobs are the lock, these slices the memory, so a
// Job removed by its TTL is never re-created and a manager restart launches
// nothing twice. Written only by the Playbook controller.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=pbp
// +kubebuilder:printcolumn:name="Playbook",type=string,JSONPath=`.playbook`
// +kubebuilder:printcolumn:name="Runs",type=integer,JSONPath=`.runCount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PlaybookProgress struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// playbook is the name of the Playbook, in the same namespace.
	Playbook string `json:"playbook"`
	// runCount is len(runs), for kubectl's columns.
	RunCount int32 `json:"runCount"`
	// runs of this slice, sorted by user id; one per user.
	// +kubebuilder:validation:MaxItems=500
	// +listType=atomic
	// +optional
	Runs []PlaybookRun `json:"runs,omitempty"`
}

// PlaybookProgressList is a list of PlaybookProgress slices.
// +kubebuilder:object:root=true
type PlaybookProgressList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PlaybookProgress `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PlaybookProgress{}, &PlaybookProgressList{})
}
