package playbook

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

func TestBuildJobRestartPolicy(t *testing.T) {
	for _, tc := range []struct {
		template, want corev1.RestartPolicy
	}{
		{"", corev1.RestartPolicyNever}, // unset means Always to a pod: a Job rejects it
		{corev1.RestartPolicyNever, corev1.RestartPolicyNever},
		{corev1.RestartPolicyOnFailure, corev1.RestartPolicyOnFailure},
	} {
		pb := &v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pb", UID: "uid"}}
		pb.Spec.Steps = []v1alpha1.PlaybookStep{{Name: "welcome", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: tc.template, Containers: []corev1.Container{{Name: "task", Image: "busybox"}},
			}},
		}}}}
		run := v1alpha1.PlaybookRun{UserID: "u1", Persona: "p", EnteredAt: metav1.NewTime(time.Unix(0, 0))}
		job, _ := BuildJob(pb, Launch{Job: "job", Step: 0, Runs: []v1alpha1.PlaybookRun{run}}, nil)
		if got := job.Spec.Template.Spec.RestartPolicy; got != tc.want {
			t.Errorf("template %q: Job restartPolicy %q, want %q", tc.template, got, tc.want)
		}
		if pb.Spec.Steps[0].JobTemplate.Spec.Template.Spec.RestartPolicy != tc.template {
			t.Error("BuildJob changed the playbook's template")
		}
	}
}

func TestLaunchMessage(t *testing.T) {
	for _, tc := range []struct {
		created int
		c       Counts
		want    string
	}{
		{1, Counts{Pending: 1, Running: 1}, "created 1 Job; 1 run pending, 1 running"},
		{2, Counts{Pending: 0, Running: 2}, "created 2 Jobs; 0 runs pending, 2 running"},
		{0, Counts{Pending: 5}, "created 0 Jobs; 5 runs pending, 0 running"},
	} {
		if got := LaunchMessage(tc.created, tc.c); got != tc.want {
			t.Errorf("LaunchMessage(%d, %+v) = %q, want %q", tc.created, tc.c, got, tc.want)
		}
	}
}

func payloadPlaybook(usersPerJob int32) *v1alpha1.Playbook {
	pb := &v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pb", UID: "uid"}}
	pb.Spec.UsersPerJob = usersPerJob
	pb.Spec.Steps = []v1alpha1.PlaybookStep{{Name: "welcome", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "init", Image: "busybox"}},
			Containers:     []corev1.Container{{Name: "task", Image: "busybox", Env: []corev1.EnvVar{{Name: "KEEP", Value: "me"}}}},
		}},
	}}}}
	return pb
}

func runs(n int) []v1alpha1.PlaybookRun {
	out := make([]v1alpha1.PlaybookRun, n)
	for i := range out {
		out[i] = v1alpha1.PlaybookRun{UserID: fmt.Sprintf("user-%04d@example.com", i), AccountID: "acme", Persona: "p",
			EnteredAt: metav1.NewTime(time.Unix(0, 0))}
	}
	return out
}

// profileOf gives every user a profile of about size bytes.
func profileOf(size int) Profile {
	return func(id string) map[string]any {
		return map[string]any{"user": map[string]any{"id": id, "notes": strings.Repeat("x", size)}}
	}
}

// maxEnv is the longest env value of any container: ids and names only.
func maxEnv(t *testing.T, job *batchv1.Job) int {
	t.Helper()
	longest := 0
	spec := job.Spec.Template.Spec
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil {
				t.Errorf("%s: env %s from a reference", c.Name, e.Name)
			}
			longest = max(longest, len(e.Value))
		}
	}
	return longest
}

func env(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

// The payload is a Secret mounted in every container, never an env value: a
// batch of 1000 users whose payload is well over the kernel's 128 KiB limit for
// one env string still starts, and `get job -o yaml` shows no profile.
func TestBuildJobPayloadInSecret(t *testing.T) {
	pb := payloadPlaybook(1000)
	job, secret := BuildJob(pb, Launch{Job: "pb-welcome-abc", Runs: runs(1000)}, profileOf(200))
	if secret == nil {
		t.Fatal("no payload Secret")
	}
	users := secret.Data[UsersKey]
	if len(users) <= 128<<10 {
		t.Fatalf("payload is %d bytes; the test needs more than 128 KiB", len(users))
	}
	var decoded []userContext
	if err := json.Unmarshal(users, &decoded); err != nil || len(decoded) != 1000 || decoded[999].Profile == nil {
		t.Fatalf("users.json: %d users, err %v", len(decoded), err)
	}
	t.Logf("users.json of 1000 users: %d bytes; longest env value: %d bytes", len(users), maxEnv(t, job))
	if n := maxEnv(t, job); n > 64 {
		t.Errorf("longest env value is %d bytes: payload leaked into the environment", n)
	}
	if secret.Name != job.Name || secret.Namespace != job.Namespace || secret.Immutable == nil || !*secret.Immutable {
		t.Errorf("payload Secret %s/%s immutable=%v, want %s/%s immutable", secret.Namespace, secret.Name, secret.Immutable, job.Namespace, job.Name)
	}
	if len(secret.OwnerReferences) != 1 || secret.OwnerReferences[0].UID != pb.UID || secret.OwnerReferences[0].BlockOwnerDeletion != nil {
		t.Errorf("payload owner references %+v, want the playbook, not blocking", secret.OwnerReferences)
	}
	spec := job.Spec.Template.Spec
	if len(spec.Volumes) != 1 || spec.Volumes[0].Secret == nil || spec.Volumes[0].Secret.SecretName != secret.Name {
		t.Fatalf("volumes %+v, want the payload Secret", spec.Volumes)
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != PayloadDir || !c.VolumeMounts[0].ReadOnly {
			t.Errorf("%s: mounts %+v, want %s read-only", c.Name, c.VolumeMounts, PayloadDir)
		}
		e := env(c)
		if e[EnvUsersFile] != PayloadDir+"/"+UsersKey || e[EnvUserCount] != "1000" || e[EnvProfileOmitted] != "" {
			t.Errorf("%s: env %v", c.Name, e)
		}
	}
	if env(spec.Containers[0])["KEEP"] != "me" {
		t.Error("the template's own env was lost")
	}
	if len(pb.Spec.Steps[0].JobTemplate.Spec.Template.Spec.Volumes) != 0 {
		t.Error("BuildJob changed the playbook's template")
	}
}

func TestBuildJobPayloadBounds(t *testing.T) {
	for _, tc := range []struct {
		name        string
		usersPerJob int32
		runs        int
		profile     Profile
		wantFile    string // key in the Secret; "" = no Secret
		omitted     bool
	}{
		{"one user with a profile", 1, 1, profileOf(100), ProfileKey, false},
		{"one user, profile over the bound", 1, 1, profileOf(MaxProfileBytes), "", true},
		{"one user, no store", 1, 1, nil, "", false},
		{"one user gone from the store", 1, 1, func(string) map[string]any { return nil }, "", false},
		{"batch of one", 5, 1, profileOf(100), UsersKey, false},
		{"batch over the bound keeps the ids", 1000, 1000, profileOf(1000), UsersKey, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job, secret := BuildJob(payloadPlaybook(tc.usersPerJob), Launch{Job: "j", Runs: runs(tc.runs)}, tc.profile)
			e := env(job.Spec.Template.Spec.Containers[0])
			if (e[EnvProfileOmitted] == "true") != tc.omitted {
				t.Errorf("%s = %q, want omitted=%v", EnvProfileOmitted, e[EnvProfileOmitted], tc.omitted)
			}
			if tc.wantFile == "" {
				if secret != nil || len(job.Spec.Template.Spec.Volumes) != 0 || e[EnvProfileFile] != "" {
					t.Errorf("a payload without content: secret %v, env %v", secret != nil, e)
				}
				return
			}
			if secret == nil || len(secret.Data) != 1 || len(secret.Data[tc.wantFile]) == 0 {
				t.Fatalf("payload Secret %+v, want only %s", secret, tc.wantFile)
			}
			if tc.wantFile == UsersKey {
				if len(secret.Data[UsersKey]) > MaxUsersBytes && !tc.omitted {
					t.Errorf("users.json of %d bytes over the bound", len(secret.Data[UsersKey]))
				}
				var users []userContext
				if err := json.Unmarshal(secret.Data[UsersKey], &users); err != nil || len(users) != tc.runs {
					t.Errorf("users.json: %d users, err %v", len(users), err)
				}
			}
			if tc.wantFile == ProfileKey && e[EnvProfileFile] != PayloadDir+"/"+ProfileKey {
				t.Errorf("%s = %q", EnvProfileFile, e[EnvProfileFile])
			}
		})
	}
}
