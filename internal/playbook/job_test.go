package playbook

import (
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
		job := BuildJob(pb, Launch{Job: "job", Step: 0, Runs: []v1alpha1.PlaybookRun{run}}, nil)
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
