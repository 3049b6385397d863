package ingest

import "github.com/usersuccess/persona-operator/internal/testutil/pgtest"

// PG is the package's PostgreSQL server, for the external tests.
func PG() *pgtest.Server { return srv }
