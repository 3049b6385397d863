package controller

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	. "github.com/onsi/gomega/gstruct"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/usersuccess/persona-operator/internal/testutil/cluster"
)

// These specs check what the CRD schemas alone (OpenAPI markers and
// x-kubernetes-validations) accept and reject, against a real kube-apiserver.

// sampleFiles lists config/samples' manifests: the spec tree is built from
// them, before any spec runs.
func sampleFiles() []string {
	files, err := cluster.SampleFiles()
	if err != nil {
		panic(err)
	}
	return files
}

const validDataSource = `
apiVersion: personas.usersuccess.io/v1alpha1
kind: DataSource
metadata: {name: ds}
spec:
  type: Inline
  inline: {format: CSV, data: "id,nps\nu-1,9\n"}
  attributes:
  - {name: nps, type: Int}
`

const validPersona = `
apiVersion: personas.usersuccess.io/v1alpha1
kind: Persona
metadata: {name: p}
spec:
  rule: user.nps <= 6
  insights:
  - {name: ids, type: TopValues, expression: user.id}
`

const validPlaybook = `
apiVersion: personas.usersuccess.io/v1alpha1
kind: Playbook
metadata: {name: pb}
spec:
  personaRef: {name: p}
  steps:
  - name: nudge
    jobTemplate:
      spec:
        template:
          spec:
            restartPolicy: Never
            containers: [{name: c, image: busybox}]
`

type mutation func(obj map[string]any)

func set(value any, path ...string) mutation {
	return func(obj map[string]any) {
		Expect(unstructured.SetNestedField(obj, value, path...)).To(Succeed())
	}
}

// httpSpec makes the valid DataSource an HTTP one with fields added to spec.http.
func httpSpec(fields map[string]any) mutation {
	h := map[string]any{"url": "https://example.com/users"}
	for k, v := range fields {
		h[k] = v
	}
	return all(set("HTTP", "spec", "type"), del("spec", "inline"), set(h, "spec", "http"))
}

func del(path ...string) mutation {
	return func(obj map[string]any) { unstructured.RemoveNestedField(obj, path...) }
}

func all(ms ...mutation) mutation {
	return func(obj map[string]any) {
		for _, m := range ms {
			m(obj)
		}
	}
}

var _ = Describe("Admission", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	create := func(manifest string, m mutation) error {
		objs, err := cluster.DecodeYAML([]byte(manifest))
		Expect(err).NotTo(HaveOccurred())
		Expect(objs).To(HaveLen(1))
		obj := objs[0]
		if m != nil {
			m(obj.Object)
		}
		obj.SetNamespace(ns)
		return k8sClient.Create(ctx, obj)
	}

	Context("samples", func() {
		files := sampleFiles()
		It("finds samples of every kind", func() {
			kinds := map[string]bool{}
			for _, f := range files {
				data, err := os.ReadFile(f)
				Expect(err).NotTo(HaveOccurred())
				objs, err := cluster.DecodeYAML(data)
				Expect(err).NotTo(HaveOccurred())
				for _, o := range objs {
					kinds[o.GetKind()] = true
				}
			}
			Expect(kinds).To(HaveKey("DataSource"))
			Expect(kinds).To(HaveKey("Persona"))
			Expect(kinds).To(HaveKey("Playbook"))
		})
		for _, f := range files {
			It("accepts "+filepath.ToSlash(f), func() {
				data, err := os.ReadFile(f)
				Expect(err).NotTo(HaveOccurred())
				objs, err := cluster.DecodeYAML(data)
				Expect(err).NotTo(HaveOccurred())
				Expect(objs).NotTo(BeEmpty())
				for _, obj := range objs {
					obj.SetNamespace(ns)
					Expect(k8sClient.Create(ctx, obj)).To(Succeed())
				}
			})
		}
	})

	It("applies defaults", func() {
		Expect(create(validDataSource, nil)).To(Succeed())
		Expect(create(validPlaybook, nil)).To(Succeed())
		Expect(create(validPersona, nil)).To(Succeed())

		ds := &unstructured.Unstructured{}
		ds.SetAPIVersion("personas.usersuccess.io/v1alpha1")
		ds.SetKind("DataSource")
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ds"}, ds)).To(Succeed())
		Expect(ds.Object["spec"]).To(MatchKeys(IgnoreExtras, Keys{
			"entity":           Equal("User"),
			"interval":         Equal("5m"),
			"timeout":          Equal("60s"),
			"maxShrinkPercent": BeNumerically("==", 50),
			"key":              Equal(map[string]any{"userId": "id"}),
		}))

		pb := &unstructured.Unstructured{}
		pb.SetAPIVersion("personas.usersuccess.io/v1alpha1")
		pb.SetKind("Playbook")
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "pb"}, pb)).To(Succeed())
		Expect(pb.Object["spec"]).To(MatchKeys(IgnoreExtras, Keys{
			"trigger":              Equal("Enter"),
			"reentryPolicy":        Equal("Once"),
			"maxConcurrentJobs":    BeNumerically("==", 10),
			"maxLaunchesPerMinute": BeNumerically("==", 60),
			"usersPerJob":          BeNumerically("==", 1),
		}))

		p := &unstructured.Unstructured{}
		p.SetAPIVersion("personas.usersuccess.io/v1alpha1")
		p.SetKind("Persona")
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "p"}, p)).To(Succeed())
		Expect(p.Object["spec"]).To(MatchKeys(IgnoreExtras, Keys{
			"refreshInterval": Equal("10m"),
			"sliceSize":       BeNumerically("==", 1000),
		}))
	})

	// Every invalid input is rejected as Invalid, and the message names the field.
	DescribeTable("rejects invalid input",
		func(manifest string, m mutation, wantInMessage ...string) {
			err := create(manifest, m)
			Expect(err).To(HaveOccurred(), "the API server accepted an invalid object")
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			for _, want := range wantInMessage {
				Expect(err.Error()).To(ContainSubstring(want))
			}
		},
		// DataSource
		Entry("DataSource without type", validDataSource, del("spec", "type"), "spec.type: Required value"),
		Entry("DataSource with unknown type", validDataSource, set("Kafka", "spec", "type"), `spec.type: Unsupported value: "Kafka"`),
		Entry("DataSource without attributes", validDataSource, del("spec", "attributes"), "spec.attributes: Required value"),
		Entry("DataSource with empty attributes", validDataSource, set([]any{}, "spec", "attributes"), "spec.attributes needs at least one attribute"),
		Entry("Events type without spec.events", validDataSource, all(set("Events", "spec", "type"), del("spec", "inline")),
			"type Events requires spec.events"),
		Entry("Events type with entity Account", validDataSource, all(set("Events", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"writeKeySecretRef": map[string]any{"name": "s", "key": "k"}}, "spec", "events"),
			set("Account", "spec", "entity"), set("id", "spec", "key", "accountId")), "type Events requires spec.events and entity User"),
		Entry("Events aggregate Sum without property", validDataSource, all(set("Events", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"writeKeySecretRef": map[string]any{"name": "s", "key": "k"},
				"aggregates": []any{map[string]any{"name": "n", "function": "Sum"}}}, "spec", "events")), "LastValue and Sum need property"),
		Entry("Events aggregate with a bad window", validDataSource, all(set("Events", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"writeKeySecretRef": map[string]any{"name": "s", "key": "k"},
				"aggregates": []any{map[string]any{"name": "n", "function": "Count", "window": "2w"}}}, "spec", "events")), "window"),
		Entry("Inline type without spec.inline", validDataSource, del("spec", "inline"), "type Inline requires spec.inline"),
		Entry("Inline type with spec.http too", validDataSource,
			set(map[string]any{"url": "https://example.com"}, "spec", "http"), "type Inline requires spec.inline and forbids spec.http"),
		Entry("HTTP type without spec.http", validDataSource, set("HTTP", "spec", "type"), "type HTTP requires spec.http"),
		Entry("PostgreSQL type without spec.postgres", validDataSource, set("PostgreSQL", "spec", "type"), "type PostgreSQL requires spec.postgres"),
		Entry("inline data and configMapRef both", validDataSource,
			set(map[string]any{"name": "cm", "key": "users.csv"}, "spec", "inline", "configMapRef"),
			"exactly one of spec.inline.data and spec.inline.configMapRef"),
		Entry("inline with neither data nor configMapRef", validDataSource, del("spec", "inline", "data"),
			"exactly one of spec.inline.data and spec.inline.configMapRef"),
		Entry("inline with unknown format", validDataSource, set("XML", "spec", "inline", "format"), `spec.inline.format: Unsupported value: "XML"`),
		Entry("configMapRef without key", validDataSource, all(del("spec", "inline", "data"),
			set(map[string]any{"name": "cm"}, "spec", "inline", "configMapRef")), "spec.inline.configMapRef.key: Required value"),
		Entry("attribute with unknown type", validDataSource,
			set([]any{map[string]any{"name": "nps", "type": "Float"}}, "spec", "attributes"), `spec.attributes[0].type: Unsupported value: "Float"`),
		Entry("attribute with an invalid name", validDataSource,
			set([]any{map[string]any{"name": "1nps", "type": "Int"}}, "spec", "attributes"), "spec.attributes[0].name"),
		Entry("attribute with from and expression", validDataSource,
			set([]any{map[string]any{"name": "nps", "type": "Int", "from": "score", "expression": "int(record.score)"}}, "spec", "attributes"),
			"from and expression are mutually exclusive"),
		Entry("duplicate attribute names", validDataSource,
			set([]any{map[string]any{"name": "nps", "type": "Int"}, map[string]any{"name": "nps", "type": "String"}}, "spec", "attributes"),
			"spec.attributes[1]: Duplicate value"),
		Entry("interval that is not a duration", validDataSource, set("5 minutes", "spec", "interval"), "spec.interval"),
		Entry("interval below 10s", validDataSource, set("1s", "spec", "interval"), "interval must be at least 10s"),
		Entry("zero timeout", validDataSource, set("0s", "spec", "timeout"), "timeout must be greater than 0s"),
		Entry("maxStaleness that is not a duration", validDataSource, set("1d", "spec", "maxStaleness"), "spec.maxStaleness"),
		Entry("maxShrinkPercent over 100", validDataSource, set(int64(150), "spec", "maxShrinkPercent"), "spec.maxShrinkPercent"),
		Entry("negative maxShrinkPercent", validDataSource, set(int64(-1), "spec", "maxShrinkPercent"), "spec.maxShrinkPercent"),
		Entry("priority out of range", validDataSource, set(int64(5000), "spec", "priority"), "spec.priority"),
		Entry("unknown entity", validDataSource, set("Ticket", "spec", "entity"), `spec.entity: Unsupported value: "Ticket"`),
		Entry("Signal entity without spec.signal", validDataSource, set("Signal", "spec", "entity"), "entity Signal requires spec.signal"),
		Entry("spec.signal with User entity", validDataSource, set(map[string]any{"attribute": "tickets"}, "spec", "signal"),
			"spec.signal is only allowed with entity Signal"),
		Entry("Account entity without key.accountId", validDataSource, set("Account", "spec", "entity"), "entity Account requires spec.key.accountId"),
		Entry("signal attribute with an invalid name", validDataSource, all(set("Signal", "spec", "entity"),
			set(map[string]any{"attribute": "open tickets"}, "spec", "signal")), "spec.signal.attribute"),
		Entry("http url that is not http(s)", validDataSource, all(set("HTTP", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"url": "ftp://example.com/users"}, "spec", "http")), "url must be an absolute http or https URL"),
		Entry("http bearer and basic auth both", validDataSource, all(set("HTTP", "spec", "type"), del("spec", "inline"),
			set(map[string]any{
				"url":                  "https://example.com/users",
				"bearerTokenSecretRef": map[string]any{"name": "s", "key": "token"},
				"basicAuthSecretRef":   map[string]any{"name": "s"},
			}, "spec", "http")), "spec.http.bearerTokenSecretRef, basicAuthSecretRef and oauth2 are mutually exclusive"),
		Entry("http bearer secret ref without key", validDataSource, all(set("HTTP", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"url": "https://example.com/users", "bearerTokenSecretRef": map[string]any{"name": "s"}}, "spec", "http")),
			"spec.http.bearerTokenSecretRef.key: Required value"),
		Entry("http header with value and valueFrom", validDataSource, all(set("HTTP", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"url": "https://example.com/users", "headers": []any{map[string]any{
				"name": "X-Api-Key", "value": "k", "valueFrom": map[string]any{"name": "s", "key": "k"},
			}}}, "spec", "http")), "exactly one of value and valueFrom"),
		Entry("http cursor pagination without cursorParam", validDataSource, all(set("HTTP", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"url": "https://example.com/users", "pagination": map[string]any{"type": "Cursor", "cursorPath": "next"}}, "spec", "http")),
			`pagination type Cursor sends the cursor in cursorParam or in the body's "{cursor}" placeholder: exactly one of them`),
		Entry("http body with GET", validDataSource, httpSpec(map[string]any{"body": `{"a":1}`}),
			"spec.http.body goes with method POST, and method POST needs a body"),
		Entry("http POST without body", validDataSource, httpSpec(map[string]any{"method": "POST"}),
			"spec.http.body goes with method POST, and method POST needs a body"),
		Entry("http unknown method", validDataSource, httpSpec(map[string]any{"method": "PUT", "body": `{}`}), `Unsupported value: "PUT"`),
		Entry("http body cursor and cursorParam", validDataSource, httpSpec(map[string]any{"method": "POST", "body": `{"after":"{cursor}"}`,
			"pagination": map[string]any{"type": "Cursor", "cursorPath": "next", "cursorParam": "after"}}), "exactly one of them"),
		Entry("http body cursor without Cursor pagination", validDataSource, httpSpec(map[string]any{"method": "POST", "body": `{"after":"{cursor}"}`}),
			"the body's {cursor} placeholder needs pagination type Cursor"),
		Entry("http body since without incremental", validDataSource, httpSpec(map[string]any{"method": "POST", "body": `{"v":"{since}"}`}),
			"the body's {since} placeholder needs spec.http.incremental"),
		Entry("http maxResults without a body watermark", validDataSource, httpSpec(map[string]any{"pagination": map[string]any{
			"type": "Cursor", "cursorPath": "next", "cursorParam": "after", "maxResults": int64(10000)}}),
			"pagination.maxResults needs spec.http.incremental and a POST body"),
		Entry("http incremental recordPath without url", validDataSource, httpSpec(map[string]any{"incremental": map[string]any{
			"watermarkField": "created", "param": "since", "recordPath": "data.object"}}), "recordPath applies to the incremental url's listing: it needs url"),
		Entry("http deletedValues without deletedField", validDataSource, httpSpec(map[string]any{"incremental": map[string]any{
			"watermarkField": "created", "param": "since", "deletedValues": []any{"canceled"}}}), "deletedValues needs deletedField"),
		Entry("http valueTemplate without param", validDataSource, httpSpec(map[string]any{"method": "POST", "body": `{"v":"{since}"}`,
			"incremental": map[string]any{"watermarkField": "u", "valueTemplate": "x {since}"}}), "valueTemplate is the value of param: it needs param"),
		Entry("http cursor from both a path and the last record", validDataSource, httpSpec(map[string]any{"pagination": map[string]any{
			"type": "Cursor", "cursorParam": "starting_after", "cursorPath": "next", "cursorRecordField": "id"}}),
			"exactly one of cursorPath and cursorRecordField"),
		Entry("http cursor fields on a next-link listing", validDataSource, httpSpec(map[string]any{"pagination": map[string]any{
			"type": "NextLink", "nextLinkPath": "links.next", "cursorPath": "next"}}),
			"cursorPath, cursorParam and cursorRecordField are only used by pagination type Cursor"),
		Entry("http page numbers without pageParam", validDataSource, httpSpec(map[string]any{"pagination": map[string]any{"type": "PageNumber"}}),
			"pagination type PageNumber requires pageParam"),
		Entry("http offset without offsetParam", validDataSource, httpSpec(map[string]any{"pagination": map[string]any{"type": "Offset"}}),
			"pagination type Offset requires offsetParam"),
		Entry("http pageSize without pageSizeParam", validDataSource, httpSpec(map[string]any{"pagination": map[string]any{
			"type": "Offset", "offsetParam": "offset", "pageSize": int64(100)}}), "pageSizeParam and pageSize go together"),
		Entry("http hasMorePath without pagination", validDataSource, httpSpec(map[string]any{"pagination": map[string]any{
			"type": "None", "hasMorePath": "has_more"}}), "hasMorePath and endPath need a pagination type other than None"),
		Entry("http unknown pagination type", validDataSource, httpSpec(map[string]any{"pagination": map[string]any{"type": "Pages"}}),
			`Unsupported value: "Pages"`),
		Entry("http oauth2 and a bearer token", validDataSource, httpSpec(map[string]any{
			"bearerTokenSecretRef": map[string]any{"name": "s", "key": "token"},
			"oauth2":               map[string]any{"flow": "ClientCredentials", "tokenURL": "https://auth.example.com/token", "secretRef": map[string]any{"name": "o"}}}),
			"bearerTokenSecretRef, basicAuthSecretRef and oauth2 are mutually exclusive"),
		Entry("http oauth2 with an unknown flow", validDataSource, httpSpec(map[string]any{
			"oauth2": map[string]any{"flow": "Password", "tokenURL": "https://auth.example.com/token", "secretRef": map[string]any{"name": "o"}}}),
			`spec.http.oauth2.flow: Unsupported value: "Password"`),
		Entry("http oauth2 subject outside the JWT flow", validDataSource, httpSpec(map[string]any{
			"oauth2": map[string]any{"flow": "RefreshToken", "tokenURL": "https://auth.example.com/token", "subject": "me", "secretRef": map[string]any{"name": "o"}}}),
			"subject and audience are only used by the JWTBearer flow"),
		Entry("http oauth2 token URL that is not http(s)", validDataSource, httpSpec(map[string]any{
			"oauth2": map[string]any{"flow": "ClientCredentials", "tokenURL": "ldap://auth.example.com", "secretRef": map[string]any{"name": "o"}}}),
			"tokenURL must be an absolute http or https URL"),
		Entry("http requestsPerMinute 0", validDataSource, httpSpec(map[string]any{"rateLimit": map[string]any{"requestsPerMinute": int64(0)}}),
			"spec.http.rateLimit.requestsPerMinute"),
		Entry("http incremental without param", validDataSource, httpSpec(map[string]any{"incremental": map[string]any{"watermarkField": "updated_at"}}),
			`spec.http.incremental needs param, or a POST body with a "{since}" placeholder`),
		Entry("http incremental template without {since}", validDataSource, httpSpec(map[string]any{"incremental": map[string]any{
			"watermarkField": "updated_at", "param": "q", "valueTemplate": "SELECT Id FROM Contact"}}), "valueTemplate must contain {since}"),
		Entry("http incremental fullResyncInterval under 1m", validDataSource, httpSpec(map[string]any{"incremental": map[string]any{
			"watermarkField": "updated_at", "param": "since", "fullResyncInterval": "30s"}}), "fullResyncInterval must be at least 1m"),
		Entry("http incremental on a Signal source", validDataSource, all(httpSpec(map[string]any{"incremental": map[string]any{
			"watermarkField": "updated_at", "param": "since"}}), set("Signal", "spec", "entity"), set(map[string]any{"attribute": "tickets"}, "spec", "signal")),
			"spec.http.incremental is not supported for entity Signal"),
		Entry("http next-link pagination without nextLinkPath", validDataSource, all(set("HTTP", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"url": "https://example.com/users", "pagination": map[string]any{"type": "NextLink"}}, "spec", "http")),
			"pagination type NextLink requires nextLinkPath"),
		Entry("http maxResponseBytes too small", validDataSource, all(set("HTTP", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"url": "https://example.com/users", "maxResponseBytes": int64(10)}, "spec", "http")),
			"spec.http.maxResponseBytes"),
		Entry("postgres without dsnSecretRef", validDataSource, all(set("PostgreSQL", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"query": "SELECT 1"}, "spec", "postgres")), "spec.postgres.dsnSecretRef: Required value"),
		Entry("postgres with an empty query", validDataSource, all(set("PostgreSQL", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"query": "", "dsnSecretRef": map[string]any{"name": "db", "key": "dsn"}}, "spec", "postgres")),
			"spec.postgres.query"),
		Entry("postgres secret key with invalid characters", validDataSource, all(set("PostgreSQL", "spec", "type"), del("spec", "inline"),
			set(map[string]any{"query": "SELECT 1", "dsnSecretRef": map[string]any{"name": "db", "key": "my dsn"}}, "spec", "postgres")),
			"spec.postgres.dsnSecretRef.key"),

		// Persona
		Entry("Persona without rule", validPersona, del("spec", "rule"), "spec.rule: Required value"),
		Entry("Persona with an empty rule", validPersona, set("", "spec", "rule"), "spec.rule"),
		Entry("Persona with unknown stage", validPersona, set("churned", "spec", "stage"), `spec.stage: Unsupported value: "churned"`),
		Entry("insight with unknown type", validPersona,
			set([]any{map[string]any{"name": "x", "type": "Median", "expression": "account.arr"}}, "spec", "insights"),
			`spec.insights[0].type: Unsupported value: "Median"`),
		Entry("insight without expression", validPersona,
			set([]any{map[string]any{"name": "x", "type": "Sum"}}, "spec", "insights"), "spec.insights[0].expression: Required value"),
		Entry("duplicate insight names", validPersona, set([]any{
			map[string]any{"name": "x", "type": "Sum", "expression": "account.arr"},
			map[string]any{"name": "x", "type": "Average", "expression": "account.arr"},
		}, "spec", "insights"), "spec.insights[1]: Duplicate value"),
		Entry("insight limit over 10", validPersona,
			set([]any{map[string]any{"name": "x", "type": "TopValues", "expression": "account.tier", "limit": int64(11)}}, "spec", "insights"),
			"spec.insights[0].limit"),
		Entry("refreshInterval that is not a duration", validPersona, set("hourly", "spec", "refreshInterval"), "spec.refreshInterval"),
		Entry("refreshInterval below 10s", validPersona, set("5s", "spec", "refreshInterval"), "refreshInterval must be at least 10s"),
		Entry("sliceSize 0", validPersona, set(int64(0), "spec", "sliceSize"), "spec.sliceSize"),
		Entry("sliceSize over 1000", validPersona, set(int64(5000), "spec", "sliceSize"), "spec.sliceSize"),
		Entry("dataSources entry without name", validPersona, set([]any{map[string]any{}}, "spec", "dataSources"), "spec.dataSources[0].name: Required value"),

		// Playbook
		Entry("Playbook without a trigger", validPlaybook, del("spec", "personaRef"),
			"exactly one of spec.personaRef, spec.personaSelector and spec.stage must be set"),
		Entry("Playbook with personaRef and stage", validPlaybook, set("onboarding", "spec", "stage"),
			"exactly one of spec.personaRef, spec.personaSelector and spec.stage must be set"),
		Entry("Playbook with personaRef and personaSelector", validPlaybook,
			set(map[string]any{"matchLabels": map[string]any{"team": "cs"}}, "spec", "personaSelector"),
			"exactly one of spec.personaRef, spec.personaSelector and spec.stage must be set"),
		Entry("Playbook with unknown stage", validPlaybook, all(del("spec", "personaRef"), set("churn", "spec", "stage")),
			`spec.stage: Unsupported value: "churn"`),
		Entry("Playbook personaRef without name", validPlaybook, set(map[string]any{}, "spec", "personaRef"), "spec.personaRef.name: Required value"),
		Entry("Playbook with unknown trigger event", validPlaybook, set("Update", "spec", "trigger"), `spec.trigger: Unsupported value: "Update"`),
		Entry("Playbook with unknown reentryPolicy", validPlaybook, set("Always", "spec", "reentryPolicy"), `spec.reentryPolicy: Unsupported value: "Always"`),
		Entry("cooldown with reentryPolicy Once", validPlaybook, set("24h", "spec", "cooldown"), "spec.cooldown requires reentryPolicy EveryEntry"),
		Entry("cooldown that is not a duration", validPlaybook, all(set("EveryEntry", "spec", "reentryPolicy"), set("1 day", "spec", "cooldown")), "spec.cooldown"),
		Entry("Playbook without steps", validPlaybook, del("spec", "steps"), "spec.steps: Required value"),
		Entry("Playbook with empty steps", validPlaybook, set([]any{}, "spec", "steps"), "spec.steps"),
		Entry("step without jobTemplate", validPlaybook, set([]any{map[string]any{"name": "nudge"}}, "spec", "steps"),
			"spec.steps[0].jobTemplate: Required value"),
		Entry("step with an invalid name", validPlaybook, func(obj map[string]any) {
			steps, _, _ := unstructured.NestedSlice(obj, "spec", "steps")
			steps[0].(map[string]any)["name"] = "Send_Nudge"
			Expect(unstructured.SetNestedSlice(obj, steps, "spec", "steps")).To(Succeed())
		}, "spec.steps[0].name"),
		Entry("duplicate step names", validPlaybook, func(obj map[string]any) {
			steps, _, _ := unstructured.NestedSlice(obj, "spec", "steps")
			Expect(unstructured.SetNestedSlice(obj, append(steps, steps[0]), "spec", "steps")).To(Succeed())
		}, "spec.steps[1]: Duplicate value"),
		Entry("step dueAfter that is not a duration", validPlaybook, func(obj map[string]any) {
			steps, _, _ := unstructured.NestedSlice(obj, "spec", "steps")
			steps[0].(map[string]any)["dueAfter"] = "tomorrow"
			Expect(unstructured.SetNestedSlice(obj, steps, "spec", "steps")).To(Succeed())
		}, "spec.steps[0].dueAfter"),
		Entry("maxConcurrentJobs 0", validPlaybook, set(int64(0), "spec", "maxConcurrentJobs"), "spec.maxConcurrentJobs"),
		Entry("maxLaunchesPerMinute 0", validPlaybook, set(int64(0), "spec", "maxLaunchesPerMinute"), "spec.maxLaunchesPerMinute"),
		Entry("usersPerJob over 1000", validPlaybook, set(int64(1001), "spec", "usersPerJob"), "spec.usersPerJob"),
	)
})
