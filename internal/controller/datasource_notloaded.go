package controller

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/usersuccess/persona-operator/api/v1alpha1"
	"github.com/usersuccess/persona-operator/internal/conditions"
	"github.com/usersuccess/persona-operator/internal/connector/postgres"
	"github.com/usersuccess/persona-operator/internal/datasource"
)

// A DataSource with spec.load None is never synced into the manager's memory:
// personas evaluated in the database read it where it lives. Its reconcile
// drops whatever an earlier spec loaded, checks the query against the
// database (its columns described, nothing read) once per generation and
// referenced objects, and says so in status.

// notLoaded reconciles a DataSource whose spec.load is None.
func (r *DataSourceReconciler) notLoaded(ctx context.Context, req ctrl.Request, before, ds *v1alpha1.DataSource,
	refs refReader, refsVersion string) (ctrl.Result, error) {
	r.listen.stop(req.NamespacedName)
	r.remove(ctx, r.Store.Namespace(req.Namespace), req)
	if checkedNotLoaded(ds, refsVersion) {
		return ctrl.Result{}, r.patchStatus(ctx, before, ds)
	}
	ds.Status.ObservedGeneration = ds.Generation
	cols, err := r.describe(ctx, ds, refs)
	if s, ok := conditions.AsStalled(err); ok {
		r.configError(ds, s)
		return ctrl.Result{}, r.patchStatus(ctx, before, ds)
	}
	if err != nil {
		// Transient (the database unreachable): Ready False, retried with backoff.
		conditions.Remove(&ds.Status.Conditions, v1alpha1.StalledCondition)
		conditions.Set(&ds.Status.Conditions, ds.Generation, v1alpha1.ReadyCondition, metav1.ConditionFalse,
			v1alpha1.ReasonSourceDegraded, "checking the query failed: "+err.Error())
		warn(r.Recorder, ds, v1alpha1.ReasonSourceDegraded, "Check", "checking the query failed: "+err.Error())
		if perr := r.patchStatus(ctx, before, ds); perr != nil {
			return ctrl.Result{}, perr
		}
		return ctrl.Result{}, err
	}
	datasource.MarkNotLoaded(ds, cols, refsVersion)
	return ctrl.Result{}, r.patchStatus(ctx, before, ds)
}

// checkedNotLoaded reports whether status already records this generation's
// query as checked with these referenced objects.
func checkedNotLoaded(ds *v1alpha1.DataSource, refsVersion string) bool {
	c := meta.FindStatusCondition(ds.Status.Conditions, v1alpha1.ReadyCondition)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == v1alpha1.ReasonNotLoaded &&
		c.ObservedGeneration == ds.Generation && ds.Status.ObservedGeneration == ds.Generation &&
		ds.Status.ReferencesVersion == refsVersion
}

// describe reads the DSN as a sync does and describes the query's columns;
// a query without the key columns is the user's to fix.
func (r *DataSourceReconciler) describe(ctx context.Context, ds *v1alpha1.DataSource, refs refReader) ([]string, error) {
	pg := ds.Spec.Postgres
	dsn, err := refs.secretKey(ctx, pg.DSNSecretRef.Name, pg.DSNSecretRef.Key, "spec.postgres.dsnSecretRef")
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, ds.Spec.SyncTimeout())
	defer cancel()
	cols, err := postgres.Describe(cctx, postgres.Config{DSN: string(dsn), Query: pg.Query})
	if err != nil {
		return nil, err // a connector.ConfigError (a query that does not parse) is Stalled
	}
	names := make([]string, 0, len(cols))
	for name := range cols {
		names = append(names, name)
	}
	sort.Strings(names)
	var missing []string
	for _, key := range []string{ds.Spec.Key.UserID, ds.Spec.Key.AccountID} {
		if _, ok := cols[key]; key != "" && !ok {
			missing = append(missing, key)
		}
	}
	if len(missing) > 0 {
		return nil, &conditions.Stalled{Reason: v1alpha1.ReasonInvalidSpec, Message: fmt.Sprintf(
			"the query returns no key column %s (it returns %s)", strings.Join(missing, ", "), strings.Join(names, ", "))}
	}
	return names, nil
}
