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

// Size bounds for the user context handed to a Job. The context travels in a
// Secret mounted as files (a Secret holds at most 1 MiB), never in the
// environment: env values are shown to anyone who may read the Job (the view
// role) and Linux refuses one env string over 128 KiB (E2BIG). When a profile
// does not fit it is left out and PERSONA_PROFILE_OMITTED says so, never
// silently cut.
const (
	// MaxProfileBytes bounds profile.json for a one-user Job.
	MaxProfileBytes = 64 << 10
	// MaxUsersBytes bounds users.json for a batched Job.
	MaxUsersBytes = 768 << 10
)

// Environment variables every playbook container gets. They hold ids and
// names only; profiles are in the payload files.
const (
	EnvNamespace      = "PERSONA_NAMESPACE"
	EnvPlaybook       = "PERSONA_PLAYBOOK"
	EnvStep           = "PERSONA_STEP"
	EnvPersona        = "PERSONA_NAME"
	EnvUserID         = "PERSONA_USER_ID"
	EnvAccountID      = "PERSONA_ACCOUNT_ID"
	EnvEnteredAt      = "PERSONA_ENTERED_AT"
	EnvProfileFile    = "PERSONA_PROFILE_FILE"
	EnvUsersFile      = "PERSONA_USERS_FILE"
	EnvUserCount      = "PERSONA_USER_COUNT"
	EnvProfileOmitted = "PERSONA_PROFILE_OMITTED"
)

// The payload: a Secret named like the Job, mounted read-only in every
// container at PayloadDir.
const (
	PayloadDir    = "/var/run/persona"
	PayloadVolume = "persona-payload"
	ProfileKey    = "profile.json"
	UsersKey      = "users.json"
)

// PayloadJobLabel names, on a payload Secret, the Job it belongs to: the
// payloads of Jobs whose outcomes are recorded are deleted together, a few
// requests for a batch of Jobs instead of one each.
const PayloadJobLabel = "personas.usersuccess.io/job"

// Annotations on one-user Jobs: user ids may be emails, which labels can't hold.
const (
	UserAnnotation      = "personas.usersuccess.io/user-id"
	EnteredAtAnnotation = "personas.usersuccess.io/entered-at"
)

// Profile returns a user's profile (user and account attributes as plain JSON
// values), or nil when the store no longer has the user.
type Profile func(userID string) map[string]any

// userContext is one user of a Job, as the container sees it in users.json.
type userContext struct {
	UserID    string         `json:"userId"`
	AccountID string         `json:"accountId,omitempty"`
	Persona   string         `json:"persona"`
	EnteredAt string         `json:"enteredAt"`
	Profile   map[string]any `json:"profile,omitempty"`
}

// BuildJob renders the Job for a launch from the step's template: our labels,
// the controller reference, the finalizer that holds the Job until its outcome
// is recorded, the ids in every container's environment, and the profiles in
// the payload Secret (nil when there is none) mounted in every container.
//
// The payload Secret is named like the Job, so creating it is as idempotent
// as the Job (AlreadyExists is the same launch). It is created before the Job
// (a pod never waits for it), owned by the playbook (garbage-collected with
// it), and deleted with the Job: when the Job is deleted (by its TTL or by
// hand) and its outcome is recorded, the payload goes before the run
// finalizer is released.
func BuildJob(pb *v1alpha1.Playbook, l Launch, profile Profile) (*batchv1.Job, *corev1.Secret) {
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
	userEnv, files := userContextOf(l.Runs, pb.Spec.UsersPerJob > 1, profile)
	env := append([]corev1.EnvVar{
		{Name: EnvNamespace, Value: pb.Namespace},
		{Name: EnvPlaybook, Value: pb.Name},
		{Name: EnvStep, Value: step.Name},
	}, userEnv...)
	spec := &job.Spec.Template.Spec
	if spec.RestartPolicy == "" {
		// A Job's pods must not restart in place (the API server rejects
		// Always, and a template without a policy means Always).
		spec.RestartPolicy = corev1.RestartPolicyNever
	}
	var payload *corev1.Secret
	var mounts []corev1.VolumeMount
	if len(files) > 0 {
		payload = payloadSecret(pb, job, files)
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: PayloadVolume, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: payload.Name, DefaultMode: ptr(int32(0o444))},
		}})
		mounts = []corev1.VolumeMount{{Name: PayloadVolume, MountPath: PayloadDir, ReadOnly: true}}
	}
	for _, cs := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		for i := range cs {
			cs[i].Env = append(cs[i].Env, env...)
			cs[i].VolumeMounts = append(cs[i].VolumeMounts, mounts...)
		}
	}
	return job, payload
}

// payloadSecret is the Secret holding a Job's payload files. Immutable: the
// kubelet need not watch it, and nobody can swap a running Job's input.
func payloadSecret(pb *v1alpha1.Playbook, job *batchv1.Job, files map[string][]byte) *corev1.Secret {
	labels := map[string]string{PayloadJobLabel: job.Name}
	for _, k := range []string{v1alpha1.PlaybookLabel, v1alpha1.PlaybookUIDLabel, v1alpha1.StepLabel} {
		labels[k] = job.Labels[k]
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: job.Name, Namespace: job.Namespace, Labels: labels,
			// Not a controller reference and not blocking: deleting the
			// playbook deletes its payloads; the Job's outcome deletes it sooner.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: v1alpha1.GroupVersion.String(), Kind: "Playbook", Name: pb.Name, UID: pb.UID,
			}},
		},
		Type:      corev1.SecretTypeOpaque,
		Immutable: ptr(true),
		Data:      files,
	}
}

// userContextOf is the per-user part of a Job: scalar ids in the environment
// for a one-user Job and its profile as profile.json; for a batching playbook
// (even a batch of one, so a batch script always finds it) the users as a
// JSON list in users.json.
func userContextOf(runs []v1alpha1.PlaybookRun, batched bool, profile Profile) ([]corev1.EnvVar, map[string][]byte) {
	if !batched && len(runs) == 1 {
		r := runs[0]
		env := []corev1.EnvVar{
			{Name: EnvUserID, Value: r.UserID},
			{Name: EnvAccountID, Value: r.AccountID},
			{Name: EnvPersona, Value: r.Persona},
			{Name: EnvEnteredAt, Value: r.EnteredAt.UTC().Format(time.RFC3339)},
		}
		if profile == nil {
			return env, nil
		}
		p := profile(r.UserID)
		if p == nil {
			return env, nil // the store no longer has the user
		}
		b, err := json.Marshal(p)
		if err != nil || len(b) > MaxProfileBytes {
			return append(env, corev1.EnvVar{Name: EnvProfileOmitted, Value: "true"}), nil
		}
		return append(env, corev1.EnvVar{Name: EnvProfileFile, Value: PayloadDir + "/" + ProfileKey}),
			map[string][]byte{ProfileKey: b}
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
	return append(env, corev1.EnvVar{Name: EnvUsersFile, Value: PayloadDir + "/" + UsersKey}),
		map[string][]byte{UsersKey: b}
}

func ptr[T any](v T) *T { return &v }

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
