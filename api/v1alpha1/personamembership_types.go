package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PersonaLabel names the Persona a PersonaMembership slice belongs to.
const PersonaLabel = "personas.usersuccess.io/persona"

// MaxMembersPerSlice is the most members one PersonaMembership holds.
const MaxMembersPerSlice = 1000

// MembershipEntry is one member of a persona.
type MembershipEntry struct {
	// userId is the member's user id.
	// +kubebuilder:validation:MaxLength=253
	UserID string `json:"userId"`
	// accountId is the member's account id, if any.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	AccountID string `json:"accountId,omitempty"`
	// enteredAt is when the user last entered the persona.
	EnteredAt metav1.Time `json:"enteredAt"`
}

// PersonaMembership is one slice of a Persona's members, written by the Persona
// controller (like an EndpointSlice for a Service). A Persona's members are the
// union of its slices, found by the personas.usersuccess.io/persona label. The
// slices are the durable memory of who is a member, so a manager restart makes
// nobody re-enter.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=pmem
// +kubebuilder:printcolumn:name="Persona",type=string,JSONPath=`.persona`
// +kubebuilder:printcolumn:name="Members",type=integer,JSONPath=`.memberCount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PersonaMembership struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// persona is the name of the Persona, in the same namespace.
	Persona string `json:"persona"`
	// memberCount is len(members), for kubectl's columns.
	MemberCount int32 `json:"memberCount"`
	// members of this slice, sorted by user id.
	// +kubebuilder:validation:MaxItems=1000
	// +listType=atomic
	// +optional
	Members []MembershipEntry `json:"members,omitempty"`
}

// PersonaMembershipList is a list of PersonaMemberships.
// +kubebuilder:object:root=true
type PersonaMembershipList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PersonaMembership `json:"items"`
}

func init() {
	SchemeBuilder.Register(&PersonaMembership{}, &PersonaMembershipList{})
}
