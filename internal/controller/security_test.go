package controller

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/identity"
	"github.com/usersuccess/persona-operator/internal/playbook"
	"github.com/usersuccess/persona-operator/internal/query/querytest"
	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

// Safe to share (issue 13): what the manager may do with the installer's RBAC,
// and what it does as a namespace's ServiceAccount, against the real
// kube-apiserver's authorizer.

// applyTenant creates config/samples/tenant_serviceaccount.yaml (the
// persona-tenant ServiceAccount, Role and RoleBinding) in a namespace.
func applyTenant(ns string) {
	GinkgoHelper()
	data, err := os.ReadFile(cluster.RepoPath("config", "samples", "tenant_serviceaccount.yaml"))
	Expect(err).NotTo(HaveOccurred())
	objs, err := cluster.DecodeYAML(data)
	Expect(err).NotTo(HaveOccurred())
	Expect(objs).To(HaveLen(3))
	for _, o := range objs {
		o.SetNamespace(ns)
		Expect(k8sClient.Create(ctx, o)).To(Succeed())
	}
	waitAllowed("system:serviceaccount:"+ns+":persona-tenant", ns, "create", "batch", "jobs", "")
}

// clientAs is a client of the test control plane acting as user.
func clientAs(user string) client.Client {
	GinkgoHelper()
	cfg := rest.CopyConfig(testEnv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return c
}

// bind grants a subject a ClusterRole (or Role) in a namespace.
func bind(ns, kind, role string, subject rbacv1.Subject) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "test-", Namespace: ns},
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: kind, Name: role}, Subjects: []rbacv1.Subject{subject}})).To(Succeed())
}

// can asks the API server's authorizer whether user may do verb on
// group/resource (name) in ns ("" : every namespace).
func can(user string, groups []string, ns, verb, group, resource, name string) bool {
	GinkgoHelper()
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: resource, Name: name}}}
	Expect(k8sClient.Create(ctx, sar)).To(Succeed())
	return sar.Status.Allowed
}

// waitAllowed waits until RBAC enforces a new binding.
func waitAllowed(user, ns, verb, group, resource, name string) {
	GinkgoHelper()
	Eventually(func() bool { return can(user, nil, ns, verb, group, resource, name) }).Should(BeTrue())
}

// kustomize finds the kustomize binary `make kustomize` builds.
func kustomize() string {
	GinkgoHelper()
	for _, p := range []string{os.Getenv("KUSTOMIZE"), filepath.Join(os.Getenv("LOCALBIN"), "kustomize"), cluster.RepoPath("bin", "kustomize")} {
		if p != "" && p != "kustomize" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	Fail("kustomize not found: run `make kustomize` (or set KUSTOMIZE)")
	return ""
}

var _ = Describe("Safe to share", func() {
	It("renders an installer whose manager may not read Secrets, create Jobs, or act as any ServiceAccount", func() {
		By("applying the RBAC of the rendered installer (config/default, as make build-installer renders it)")
		cmd := exec.Command(kustomize(), "build", cluster.RepoPath("config", "default"))
		out, err := cmd.Output()
		Expect(err).NotTo(HaveOccurred(), "kustomize build config/default")
		objs, err := cluster.DecodeYAML(out)
		Expect(err).NotTo(HaveOccurred())
		var saNS, saName string
		for _, o := range objs {
			switch o.GetKind() {
			case "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			default:
				continue
			}
			if o.GetKind() == "ServiceAccount" {
				saNS, saName = o.GetNamespace(), o.GetName()
			}
			if err := k8sClient.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
				Fail(fmt.Sprintf("creating %s %s: %v", o.GetKind(), o.GetName(), err))
			}
		}
		Expect(saName).NotTo(BeEmpty(), "the installer has no ServiceAccount")
		manager := "system:serviceaccount:" + saNS + ":" + saName
		groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + saNS, "system:authenticated"}
		ns := newNamespace()
		Eventually(func() bool { return can(manager, groups, "", "list", "batch", "jobs", "") }).Should(BeTrue(), "the installer's bindings")

		By("asking the authorizer, as kubectl auth can-i --as=" + manager + " would")
		for _, tc := range []struct {
			ns, verb, group, resource, name string
			allowed                         bool
		}{
			{"", "list", "", "secrets", "", false}, // kubectl auth can-i list secrets -A
			{"", "watch", "", "secrets", "", false},
			{ns, "get", "", "secrets", "db", false},
			{ns, "create", "", "secrets", "", false},
			{ns, "create", "batch", "jobs", "", false},
			{ns, "update", "batch", "jobs", "", false},
			{ns, "delete", "batch", "jobs", "", false},
			{ns, "patch", "batch", "jobs", "", true}, // the run finalizer
			{"", "watch", "batch", "jobs", "", true},
			{ns, "impersonate", "", "serviceaccounts", "persona-tenant", true},
			{ns, "impersonate", "", "serviceaccounts", "deployer", false},
			{"", "impersonate", "", "users", "", false},
			{"", "impersonate", "", "groups", "", false},
		} {
			Expect(can(manager, groups, tc.ns, tc.verb, tc.group, tc.resource, tc.name)).To(Equal(tc.allowed),
				"%s %s.%s %q in %q", tc.verb, tc.resource, tc.group, tc.name, tc.ns)
		}

		By("acting with a token of that ServiceAccount, as the installed manager does")
		token, err := querytest.ServiceAccountToken(ctx, testEnv.Clientset, saNS, saName)
		Expect(err).NotTo(HaveOccurred())
		cfg := rest.AnonymousClientConfig(testEnv.Config)
		cfg.BearerToken = token
		ids := &Identities{config: cfg, scheme: scheme, mapper: k8sClient.RESTMapper()}
		applyTenant(ns)
		Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deployer"}})).To(Succeed())
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
			StringData: map[string]string{"dsn": "postgres://u:pw@db/x"}})).To(Succeed())
		read := func(sa string) error {
			id, c, err := ids.Resolve(ns, sa)
			Expect(err).NotTo(HaveOccurred())
			var s corev1.Secret
			return identity.Denied(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "db"}, &s), id, "get", "secrets", "db")
		}
		Expect(read("persona-tenant")).To(Succeed(), "the tenant's Role grants it")
		s, ok := conditions.AsStalled(read("deployer"))
		Expect(ok).To(BeTrue())
		Expect(s.Reason).To(Equal(identity.ReasonImpersonationForbidden))
		s, ok = conditions.AsStalled(read(""))
		Expect(ok).To(BeTrue())
		Expect(s.Reason).To(Equal(identity.ReasonAccessDenied))
		_, c, err := ids.Resolve(ns, "")
		Expect(err).NotTo(HaveOccurred())
		Expect(apierrors.IsForbidden(c.List(ctx, &corev1.SecretList{}))).To(BeTrue(), "list secrets -A")
	})

	Describe("a user with only the editor role", func() {
		var ns string
		var alice client.Client
		BeforeEach(func() {
			ns = newNamespace()
			role, err := querytest.RepoClusterRole(ctx, testEnv.Clientset, cluster.RepoPath("config", "rbac", "usersuccess_editor_role.yaml"))
			Expect(err).NotTo(HaveOccurred())
			bind(ns, "ClusterRole", role, rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "alice"})
			waitAllowed("alice", ns, "create", v1alpha1.GroupVersion.Group, "playbooks", "")
			alice = clientAs("alice")
			applyTenant(ns)
			for _, sa := range []string{"deployer", "nobody"} {
				Expect(k8sClient.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}})).To(Succeed())
			}
		})

		It("may not create Jobs or read Secrets herself", func() {
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "direct"}, Spec: batchv1.JobSpec{Template: jobTemplate().Spec.Template}}
			Expect(apierrors.IsForbidden(alice.Create(ctx, job))).To(BeTrue())
			Expect(apierrors.IsForbidden(alice.Get(ctx, types.NamespacedName{Namespace: ns, Name: "any"}, &corev1.Secret{}))).To(BeTrue())
		})

		It("cannot get a Job running as another ServiceAccount through a Playbook", func() {
			p := pbPersona(ns, "stalled")
			pb := &v1alpha1.Playbook{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "onboard"}, Spec: v1alpha1.PlaybookSpec{
				PersonaRef: &v1alpha1.LocalObjectReference{Name: "stalled"}, ServiceAccountName: "persona-tenant",
				Steps:             []v1alpha1.PlaybookStep{{Name: "welcome", JobTemplate: jobTemplate()}},
				MaxConcurrentJobs: 10, MaxLaunchesPerMinute: 100, UsersPerJob: 1,
			}}
			pb.Spec.Steps[0].JobTemplate.Spec.Template.Spec.ServiceAccountName = "deployer"
			Expect(alice.Create(ctx, pb)).To(Succeed())
			setMembers(p, after(pb), "u1")
			Eventually(func() string {
				return cluster.Condition(fetchPlaybook(ns).Status.Conditions, v1alpha1.StalledCondition)
			}).Should(Equal("True/" + identity.ReasonServiceAccountNotAllowed))
			Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring(`may not run as ServiceAccount "deployer"`))
			Consistently(func() []batchv1.Job { return playbookJobs(ns) }, time.Second).Should(BeEmpty())

			By("the deprecated serviceAccount field is checked too")
			patch := client.MergeFrom(fetchPlaybook(ns))
			pb = fetchPlaybook(ns)
			pb.Spec.Steps[0].JobTemplate.Spec.Template.Spec.ServiceAccountName = ""
			pb.Spec.Steps[0].JobTemplate.Spec.Template.Spec.DeprecatedServiceAccount = "deployer"
			Expect(alice.Patch(ctx, pb, patch)).To(Succeed())
			Eventually(func() int64 { return fetchPlaybook(ns).Status.ObservedGeneration }).Should(Equal(pb.Generation))
			Expect(cluster.Condition(fetchPlaybook(ns).Status.Conditions, v1alpha1.StalledCondition)).To(Equal("True/" + identity.ReasonServiceAccountNotAllowed))
			Expect(playbookJobs(ns)).To(BeEmpty())

			By("naming a ServiceAccount that may not create Jobs creates nothing")
			pb = fetchPlaybook(ns)
			patch = client.MergeFrom(pb.DeepCopy())
			pb.Spec.Steps[0].JobTemplate.Spec.Template.Spec.DeprecatedServiceAccount = ""
			pb.Spec.ServiceAccountName = "nobody"
			Expect(alice.Patch(ctx, pb, patch)).To(Succeed())
			Eventually(func() string {
				return cluster.Condition(fetchPlaybook(ns).Status.Conditions, v1alpha1.StalledCondition)
			}).Should(Equal("True/" + identity.ReasonAccessDenied))
			Expect(conditionMessage(fetchPlaybook(ns).Status.Conditions, v1alpha1.StalledCondition)).To(And(
				ContainSubstring(`ServiceAccount "nobody"`), ContainSubstring("create")))
			Expect(playbookJobs(ns)).To(BeEmpty())
			var secrets corev1.SecretList
			Expect(k8sClient.List(ctx, &secrets, client.InNamespace(ns))).To(Succeed())
			Expect(secrets.Items).To(BeEmpty(), "no payload Secret was created either")

			By("the tenant's own ServiceAccount, pods as the namespace default: the Job is created, as that ServiceAccount")
			pb = fetchPlaybook(ns)
			patch = client.MergeFrom(pb.DeepCopy())
			pb.Spec.ServiceAccountName = "persona-tenant"
			Expect(alice.Patch(ctx, pb, patch)).To(Succeed())
			Eventually(func() int { return len(playbookJobs(ns)) }).Should(Equal(1))
			Expect(playbookJobs(ns)[0].Spec.Template.Spec.ServiceAccountName).To(BeEmpty())
			Eventually(func() string {
				return cluster.Condition(fetchPlaybook(ns).Status.Conditions, v1alpha1.StalledCondition)
			}).Should(BeEmpty())
		})

		It("cannot get a Secret's value sent anywhere: the DataSource's ServiceAccount may not read it", func() {
			const token = "s3cr3t-T0ken-value"
			var hits atomic.Int32
			var sawToken atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				sawToken.Store(r.Header.Get("Authorization") == "Bearer "+token)
				fmt.Fprint(w, `{"data":[{"id":"u1","account":"a","nps":3,"role":"admin"}]}`)
			}))
			DeferCleanup(srv.Close)
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-token"},
				StringData: map[string]string{"token": token}})).To(Succeed())
			ds := userSource(ns, "api")
			ds.Spec.Type = v1alpha1.DataSourceHTTP
			ds.Spec.ServiceAccountName = "nobody"
			ds.Spec.HTTP = &v1alpha1.HTTPSource{URL: srv.URL + "/users", RecordsPath: "data",
				BearerTokenSecretRef: &v1alpha1.SecretKeySelector{Name: "api-token", Key: "token"}}
			Expect(alice.Create(ctx, ds)).To(Succeed())

			Eventually(func() string { return condition(ns, "api", v1alpha1.StalledCondition) }).Should(Equal("True/" + identity.ReasonAccessDenied))
			msg := conditionMessage(fetchDS(ns, "api").Status.Conditions, v1alpha1.StalledCondition)
			Expect(msg).To(And(ContainSubstring(`ServiceAccount "nobody"`), ContainSubstring(`get secrets "api-token"`)))
			Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring(identity.ReasonAccessDenied))
			Consistently(hits.Load, 2*time.Second).Should(BeZero(), "a request reached the server")
			Expect(storeUsers(ns)).To(BeEmpty())

			By("granting the ServiceAccount the Secret: picked up without a spec change")
			Expect(k8sClient.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "read-api-token"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"api-token"}}}})).To(Succeed())
			bind(ns, "Role", "read-api-token", rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "nobody", Namespace: ns})
			Eventually(func() string { return condition(ns, "api", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
			Expect(sawToken.Load()).To(BeTrue())
			Expect(storeUsers(ns)).To(Equal([]string{"u1"}))
			Expect(condition(ns, "api", v1alpha1.StalledCondition)).To(BeEmpty())
			for what, text := range map[string]string{"events": eventNotes(ns), "logs": managerLogs.String()} {
				Expect(text).NotTo(ContainSubstring(token), "the token leaked into %s", what)
			}
		})
	})

	It("starts a batched run of 1000 users whose payload is over 128 KiB, with the profiles in a Secret the view role cannot read", func() {
		ns := newNamespace()
		applyTenant(ns)
		pbPersona(ns, "stalled")
		newPlaybook(ns, "stalled", func(s *v1alpha1.PlaybookSpec) {
			s.UsersPerJob, s.Steps, s.ServiceAccountName = 1000, s.Steps[:1], "persona-tenant"
			s.IncludeExistingMembers = true // the Persona controller's clock is the suite's
		})
		var csv strings.Builder
		csv.WriteString("id,account,role,notes\n")
		notes := strings.Repeat("n", 300)
		for i := range 1000 {
			fmt.Fprintf(&csv, "user-%04d@example.com,acme,admin,%s\n", i, notes)
		}
		Expect(k8sClient.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "crm"},
			Data: map[string]string{"users.csv": csv.String()}})).To(Succeed())
		ds := userSource(ns, "crm")
		ds.Spec.ServiceAccountName = "persona-tenant" // the ConfigMap is read as it too
		ds.Spec.Attributes = append(ds.Spec.Attributes, v1alpha1.AttributeMapping{Name: "notes", Type: v1alpha1.TypeString})
		ds.Spec.Inline = &v1alpha1.InlineSource{Format: v1alpha1.FormatCSV, ConfigMapRef: &v1alpha1.ConfigMapKeySelector{Name: "crm", Key: "users.csv"}}
		Expect(k8sClient.Create(ctx, ds)).To(Succeed())
		Eventually(func() int { return len(storeUsers(ns)) }).Should(Equal(1000))

		By("every user is in a Job's users.json; no env value is longer than an id")
		payloads := map[string][]byte{}
		Eventually(func() int {
			n := 0
			for _, j := range playbookJobs(ns) {
				if _, ok := payloads[j.Name]; !ok {
					payloads[j.Name] = payloadOf(j)[playbook.UsersKey]
				}
				var users []map[string]any
				Expect(json.Unmarshal(payloads[j.Name], &users)).To(Succeed())
				n += len(users)
			}
			return n
		}, 60*time.Second).Should(Equal(1000))
		largest := 0
		for _, j := range playbookJobs(ns) {
			largest = max(largest, len(payloads[j.Name]))
			env := envOf(j)
			Expect(env).NotTo(HaveKey(playbook.EnvProfileOmitted))
			Expect(env).To(HaveKeyWithValue(playbook.EnvUsersFile, playbook.PayloadDir+"/"+playbook.UsersKey))
			for _, c := range append(j.Spec.Template.Spec.InitContainers, j.Spec.Template.Spec.Containers...) {
				for _, e := range c.Env {
					Expect(len(e.Value)).To(BeNumerically("<=", 64), "env %s", e.Name)
				}
			}
			yamlish, err := json.Marshal(j)
			Expect(err).NotTo(HaveOccurred())
			Expect(string(yamlish)).NotTo(ContainSubstring(notes), "a profile is in the Job")
		}
		GinkgoWriter.Printf("RESULT payload: %d Jobs for 1000 users, largest users.json %d bytes\n", len(playbookJobs(ns)), largest)
		Expect(largest).To(BeNumerically(">", 128<<10), "the test needs a payload over the kernel's 128 KiB env string limit")

		By("the view role reads the Job, not its payload")
		// The rules of the built-in view role (envtest runs no controller
		// that aggregates them into view itself).
		bind(ns, "ClusterRole", "system:aggregate-to-view", rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "vera"})
		waitAllowed("vera", ns, "get", "batch", "jobs", "")
		vera := clientAs("vera")
		j := playbookJobs(ns)[0]
		Expect(vera.Get(ctx, client.ObjectKeyFromObject(&j), &batchv1.Job{})).To(Succeed())
		Expect(apierrors.IsForbidden(vera.Get(ctx, client.ObjectKeyFromObject(&j), &corev1.Secret{}))).To(BeTrue())

		By("the payload is deleted with the Job, once the Job's outcome is recorded")
		finishStep(ns, "welcome", true)
		Eventually(func() string { return playbookCounts(ns) }).Should(HavePrefix("pending=0 running=0 succeeded=1000"))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(&j), &corev1.Secret{})).To(Succeed(), "kept while the finished Job is")
		Expect(k8sClient.Delete(ctx, &j, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(&j), &batchv1.Job{}))
		}).Should(BeTrue())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(&j), &corev1.Secret{}))
		}).Should(BeTrue())
	})

	It("creates a launch's payload and Job idempotently, also after a crash between the two", func() {
		ns := newNamespace()
		applyTenant(ns)
		pb := newPlaybook(ns, "nobody", func(s *v1alpha1.PlaybookSpec) {
			s.Suspend, s.UsersPerJob, s.ServiceAccountName = true, 2, "persona-tenant"
		})
		r := &PlaybookReconciler{Client: k8sClient, Identities: &Identities{config: testEnv.Config, scheme: scheme, mapper: k8sClient.RESTMapper()}}
		act, err := r.actAs(pb)
		Expect(err).NotTo(HaveOccurred())
		launch := playbook.Launch{Job: "onboard-welcome-x1", Runs: []v1alpha1.PlaybookRun{
			{UserID: "u1", Persona: "p", EnteredAt: metav1.Now()}, {UserID: "u2", Persona: "p", EnteredAt: metav1.Now()}}}
		key := types.NamespacedName{Namespace: ns, Name: launch.Job}

		created, err := r.createJobs(ctx, pb, act, []playbook.Launch{launch})
		Expect(err).NotTo(HaveOccurred())
		Expect(created).To(Equal(1))
		var payload corev1.Secret
		Expect(k8sClient.Get(ctx, key, &payload)).To(Succeed())
		Expect(payload.Data).To(HaveKey(playbook.UsersKey))

		By("the same launch again (a pass that re-decides it): no error, nothing new")
		created, err = r.createJobs(ctx, pb, act, []playbook.Launch{launch})
		Expect(err).NotTo(HaveOccurred())
		Expect(created).To(BeZero())

		By("a crash after the payload, before the Job: the retry finds the payload and creates the Job")
		var j batchv1.Job
		Expect(k8sClient.Get(ctx, key, &j)).To(Succeed())
		j.Finalizers = nil
		Expect(k8sClient.Update(ctx, &j)).To(Succeed())
		Expect(k8sClient.Delete(ctx, &j, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, key, &batchv1.Job{})) }).Should(BeTrue())
		created, err = r.createJobs(ctx, pb, act, []playbook.Launch{launch})
		Expect(err).NotTo(HaveOccurred())
		Expect(created).To(Equal(1))
		Expect(k8sClient.Get(ctx, key, &j)).To(Succeed())
		Expect(j.Spec.Template.Spec.Volumes).To(ContainElement(HaveField("Secret.SecretName", launch.Job)))

		By("an identity refused once is not asked again in the same pass")
		r.CreateWorkers = 1
		pb.Spec.ServiceAccountName = "nobody"
		act, err = r.actAs(pb)
		Expect(err).NotTo(HaveOccurred())
		var launches []playbook.Launch
		for i := range 5 {
			l := launch
			l.Job = fmt.Sprintf("onboard-welcome-n%d", i)
			launches = append(launches, l)
		}
		created, err = r.createJobs(ctx, pb, act, launches)
		Expect(created).To(BeZero())
		s, ok := conditions.AsStalled(err)
		Expect(ok).To(BeTrue())
		Expect(s.Reason).To(Equal(identity.ReasonAccessDenied))
		Expect(s.Message).To(ContainSubstring(`ServiceAccount "nobody" may not create secrets`))
		Expect(err.(interface{ Unwrap() []error }).Unwrap()).To(HaveLen(1))
	})

	It("stalls objects naming no ServiceAccount under --require-service-account, acting as nobody", func() {
		stopManager()
		startManagerWith(identity.Policy{Require: true})
		DeferCleanup(restartManager)
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, inlineCSV(userSource(ns, "crm"), csvRows(2)))).To(Succeed())
		Eventually(func() string { return condition(ns, "crm", v1alpha1.StalledCondition) }).Should(Equal("True/" + identity.ReasonServiceAccountRequired))
		Expect(condition(ns, "crm", v1alpha1.ReadyCondition)).To(Equal("False/" + identity.ReasonServiceAccountRequired))
		Expect(storeUsers(ns)).To(BeEmpty())
		newPlaybook(ns, "stalled", nil)
		Eventually(func() string {
			return cluster.Condition(fetchPlaybook(ns).Status.Conditions, v1alpha1.StalledCondition)
		}).Should(Equal("True/" + identity.ReasonServiceAccountRequired))
		Eventually(func() string { return eventNotes(ns) }).Should(ContainSubstring("--require-service-account"))

		By("naming one satisfies it")
		applyTenant(ns)
		updateSpec(ns, "crm", func(ds *v1alpha1.DataSource) { ds.Spec.ServiceAccountName = "persona-tenant" })
		Eventually(func() string { return condition(ns, "crm", v1alpha1.ReadyCondition) }).Should(Equal("True/Succeeded"))
	})
})

// conditionMessage is a condition's message.
func conditionMessage(conds []metav1.Condition, typ string) string {
	for _, c := range conds {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}
