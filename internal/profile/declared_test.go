package profile

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/attr"
)

func TestDeclared(t *testing.T) {
	ds := &v1alpha1.DataSource{ObjectMeta: metav1.ObjectMeta{Name: "tickets"}, Spec: v1alpha1.DataSourceSpec{
		Entity: v1alpha1.EntitySignal, Priority: 3, Signal: &v1alpha1.SignalSpec{Attribute: "tickets"},
		Attributes: []v1alpha1.AttributeMapping{{Name: "status", Type: v1alpha1.TypeString}}}}
	d, err := Declared(ds)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "tickets" || d.Priority != 3 || d.Entity != v1alpha1.EntitySignal || d.SignalDecl == nil || d.SignalDecl.Name != "tickets" ||
		len(d.Users) != 0 {
		t.Errorf("Declared = %+v", d)
	}
	s := DeclaredSchema([]*SourceData{d})
	if s.User["tickets"] != attr.List {
		t.Errorf("schema %+v lacks user.tickets", s)
	}
	ds.Spec.Attributes[0].Expression = "record.(" // does not compile
	if _, err := Declared(ds); err == nil {
		t.Error("Declared accepted a mapping that does not compile")
	}
}
