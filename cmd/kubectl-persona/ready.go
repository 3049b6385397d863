package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
)

// notReadyError says why a persona's recorded state cannot be trusted: members
// and top read what the controller last wrote, and a persona that is not Ready
// (an invalid rule, a source it needs that never loaded) would otherwise look
// like one with no members.
func notReadyError(p *v1alpha1.Persona) error {
	c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.ReadyCondition)
	switch {
	case c == nil:
		return fmt.Errorf("persona %s/%s has not been evaluated yet (no Ready condition); "+
			"pass --ignore-not-ready to show what is recorded", p.Namespace, p.Name)
	case c.Status == metav1.ConditionTrue:
		return nil
	}
	return fmt.Errorf("persona %s/%s is not Ready (%s): %s; what is recorded is from its last good evaluation: "+
		"pass --ignore-not-ready to show it", p.Namespace, p.Name, c.Reason, c.Message)
}

// addIgnoreNotReady adds the flag that shows a persona's recorded state even
// when it is not Ready.
func addIgnoreNotReady(cmd *cobra.Command, ignore *bool) {
	cmd.Flags().BoolVar(ignore, "ignore-not-ready", false,
		"Show what the persona's status and slices record even when it is not Ready (exit 0).")
}
