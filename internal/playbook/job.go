package playbook

import (
	"encoding/json"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// Size bounds for the user context handed to a Job. A Job is an API object
// (etcd keeps objects under ~1.5 MiB) and environment variables are copied
// into every pod, so profiles are bounded; when they do not fit they are
// left out and PERSONA_PROFILE_OMITTED says so, never silently cut.
const (
	// MaxProfileBytes bounds PERSONA_PROFILE for a one-user Job.
	MaxProfileBytes = 16 << 10
	// MaxUsersBytes bounds PERSONA_USERS for a batched Job.
	MaxUsersBytes = 256 << 10
)

// Environment variables every playbook container gets.
const (
	EnvNamespace      = "PERSONA_NAMESPACE"
	EnvPlaybook       = "PERSONA_PLAYBOOK"
	EnvStep           = "PERSONA_STEP"
	EnvPersona        = "PERSONA_NAME"
	EnvUserID         = "PERSONA_USER_ID"
	EnvAccountID      = "PERSONA_ACCOUNT_ID"
	EnvEnteredAt      = "PERSONA_ENTERED_AT"
	EnvProfile        = "PERSONA_PROFILE"
	EnvUsers          = "PERSONA_USERS"
	EnvUserCount      = "PERSONA_USER_COUNT"
	EnvProfileOmitted = "PERSONA_PROFILE_OMITTED"
)

// Annotations on one-user Jobs: user ids may be emails, which labels can't hold.
const (
	UserAnnotation      = "personas.usersuccess.io/user-id"
	EnteredAtAnnotation = "personas.usersuccess.io/entered-at"
)

// Profile returns a user's profile (user and account attributes as plain JSON
// values), or nil when the store no longer has the user.
type Profile func(userID string) map[string]any

// userContext is one user of a Job, as the container sees it in PERSONA_USERS.
type userContext struct {
	UserID    string         `json:"userId"`
	AccountID string         `json:"accountId,omitempty"`
	Persona   string         `json:"persona"`
	EnteredAt string         `json:"enteredAt"`
	Profile   map[string]any `json:"profile,omitempty"`
}

// BuildJob renders the Job for a launch from the step's template: our labels,
// the controller reference, the finalizer that holds the Job until its outcome
// is recorded, and the user context in every container's environment.
func BuildJob(pb *v1alpha1.Playbook, l Launch, profile Profile) *batchv1.Job {
	step := pb.Spec.Steps[l.Step]
	tmpl := step.JobTemplate.DeepCopy()
	labels := map[string]string{
		v1alpha1.PlaybookLabel: pb.Name, v1alpha1.PlaybookUIDLabel: string(pb.UID), v1alpha1.StepLabel: step.Name,
	}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: l.Job, Namespace: pb.Namespace,
			Labels: merge(tmpl.Labels, labels), Annotations: merge(tmpl.Annotations, nil),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(pb, v1alpha1.GroupVersion.WithKind("Playbook"))},
			Finalizers:      []string{v1alpha1.RunFinalizer},
		},
		Spec: tmpl.Spec,
	}
	job.Spec.Template.Labels = merge(job.Spec.Template.Labels, labels)
	if len(l.Runs) == 1 {
		r := l.Runs[0]
		job.Labels[v1alpha1.PersonaLabel] = r.Persona
		job.Annotations[UserAnnotation] = r.UserID
		job.Annotations[EnteredAtAnnotation] = r.EnteredAt.UTC().Format(time.RFC3339)
	}
	env := append([]corev1.EnvVar{
		{Name: EnvNamespace, Value: pb.Namespace},
		{Name: EnvPlaybook, Value: pb.Name},
		{Name: EnvStep, Value: step.Name},
	}, userEnv(l.Runs, pb.Spec.UsersPerJob > 1, profile)...)
	spec := &job.Spec.Template.Spec
	if spec.RestartPolicy == "" {
		// A Job's pods must not restart in place (the API server rejects
		// Always, and a template without a policy means Always).
		spec.RestartPolicy = corev1.RestartPolicyNever
	}
	for i := range spec.InitContainers {
		spec.InitContainers[i].Env = append(spec.InitContainers[i].Env, env...)
	}
	for i := range spec.Containers {
		spec.Containers[i].Env = append(spec.Containers[i].Env, env...)
	}
	return job
}

// userEnv is the per-user part of the environment: scalar variables for a
// one-user Job, a JSON list when the playbook batches users (even for a batch
// of one, so a batch script always finds PERSONA_USERS).
func userEnv(runs []v1alpha1.PlaybookRun, batched bool, profile Profile) []corev1.EnvVar {
	if !batched && len(runs) == 1 {
		r := runs[0]
		env := []corev1.EnvVar{
			{Name: EnvUserID, Value: r.UserID},
			{Name: EnvAccountID, Value: r.AccountID},
			{Name: EnvPersona, Value: r.Persona},
			{Name: EnvEnteredAt, Value: r.EnteredAt.UTC().Format(time.RFC3339)},
		}
		if profile == nil {
			return env
		}
		b, err := json.Marshal(profile(r.UserID))
		if err != nil || len(b) > MaxProfileBytes {
			return append(env, corev1.EnvVar{Name: EnvProfileOmitted, Value: "true"})
		}
		return append(env, corev1.EnvVar{Name: EnvProfile, Value: string(b)})
	}
	users := make([]userContext, len(runs))
	for i, r := range runs {
		users[i] = userContext{UserID: r.UserID, AccountID: r.AccountID, Persona: r.Persona,
			EnteredAt: r.EnteredAt.UTC().Format(time.RFC3339)}
		if profile != nil {
			users[i].Profile = profile(r.UserID)
		}
	}
	env := []corev1.EnvVar{{Name: EnvUserCount, Value: strconv.Itoa(len(runs))}}
	b, err := json.Marshal(users)
	if err != nil || len(b) > MaxUsersBytes {
		for i := range users {
			users[i].Profile = nil
		}
		b, _ = json.Marshal(users) // plain strings: cannot fail
		env = append(env, corev1.EnvVar{Name: EnvProfileOmitted, Value: "true"})
	}
	return append(env, corev1.EnvVar{Name: EnvUsers, Value: string(b)})
}

func merge(base, over map[string]string) map[string]string {
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}
